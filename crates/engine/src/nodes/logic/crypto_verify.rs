//! `CryptoVerifyNode` ("Crypto: Verify"): checks that `signatureTemplate` is a signature of
//! `dataTemplate` by a public key. Port 1 when it is, port 0 when it is not.
//!
//! The fields are Crypto: Sign's (see `crypto_sign`), with a public key — SPKI `PUBLIC KEY`,
//! PKCS#1 `RSA PUBLIC KEY`, an X.509 `CERTIFICATE` (its public key; the certificate itself is
//! not checked), or a private key, whose public half is used — plus `signatureTemplate`
//! (required), read in `signatureEncodingTemplate` (`base64` by default, `hex`, `latin1`).
//! The check is Node.js's `crypto.verify(algorithm, data, {key, padding, dsaEncoding},
//! signature)`.
//!
//! Decisions:
//! * RSA-PSS accepts any salt length (`RSA_PSS_SALTLEN_AUTO`, Node's default for verifying):
//!   signatures with the largest salt (Node's and OpenSSL's default when signing), with a
//!   digest-length salt (most other libraries) and with none all verify.
//! * A signature that does not match — including one that cannot be decoded in its encoding
//!   (hex with a stray character), has the wrong length, or is not DER when `der` is chosen —
//!   takes port 0 and leaves `resultPath` alone.
//! * Failures of the check itself — a key that cannot be read, no key at the `payloadPath`, a
//!   rendered setting that is not one of its values, data that is not in its encoding — write
//!   `{"error": {"message": …}}` to `resultPath` (when given) and take port 0.
//! * Template failures halt (`TemplateError`); `keyTemplate` (as a template), `dataTemplate`
//!   and `signatureTemplate` are required, so rendering empty halts too. Plain-text settings
//!   that are not one of their values, `keyTemplateType: diskPath`, and a non-blank
//!   `credentialNameTemplate` are compile errors, as for Crypto: Sign.
//! * Templates HTML-escape as Handlebars does (`=` becomes `&#x3D;`); in the key and in a
//!   base64 signature that is read back as `=` (neither holds an `&`), so the spec's
//!   `{{data.body.sig}}` works as well as `{{{data.body.sig}}}`.

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::logic::crypto_keys::{Common, CommonConfig, Failure, PublicKey};
use crate::nodes::{optional_path, render_required, template};
use crate::path::PayloadPath;
use crate::template::Template;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    #[serde(flatten)]
    common: CommonConfig,
    signature_template: Option<String>,
}

pub struct CryptoVerify {
    common: Common,
    signature: Template,
    result: Option<PayloadPath>,
}

/// The shared key and data fields, and the signature.
pub(crate) fn config_fields() -> Vec<&'static str> {
    let mut fields = crate::node::config_fields::<CommonConfig>();
    fields.push("signatureTemplate");
    fields
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let common = Common::compile(spec, &config.common, "public key")?;
    let signature = config
        .signature_template
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| spec.error("signatureTemplate is required"))?;
    Ok(CompiledNodeType::new(
        CryptoVerify {
            common,
            signature: template(spec, "signatureTemplate", signature)?,
            result: optional_path(spec, "resultPath", config.common.result_path.as_deref())?,
        },
        2,
    ))
}

impl CryptoVerify {
    fn check(&self, payload: &Value) -> Result<bool, Failure> {
        let signature = render_required(&self.signature, "signatureTemplate", payload)?;
        let prepared = self.common.prepare(payload)?;
        let key = PublicKey::from_pem(prepared.key_text()?)?;
        Ok(match prepared.signature_encoding.decode(&signature) {
            Some(signature) => key.verify(&prepared.data, &signature, prepared.options),
            None => false,
        })
    }
}

impl Node for CryptoVerify {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        match self.check(payload) {
            Ok(valid) => Ok(Outcome::Port(usize::from(valid))),
            Err(Failure::Halt(error)) => Err(error),
            Err(Failure::Action(message)) => {
                if let Some(path) = &self.result {
                    path.set(payload, json!({"error": {"message": message}}));
                }
                Ok(Outcome::Port(0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::nodes::logic::crypto_keys::test_keys::*;
    use crate::template::encode::{base64_decode, base64_encode};
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    /// Runs the node with `changes` over a base config: the key at `data.key`, the signature
    /// at `data.sig`, the message at `data.msg`.
    fn verify_with(changes: Value, key: &str, signature: &str, message: &str) -> (usize, Value) {
        let mut config = json!({"keyTemplateType": "payloadPath", "keyTemplate": "data.key",
            "dataTemplate": "{{data.msg}}", "signatureTemplate": "{{{data.sig}}}",
            "resultPath": "working.verifyErr"});
        for (k, v) in changes.as_object().unwrap() {
            config[k] = v.clone();
        }
        let payload = json!({"data": {"key": key, "msg": message, "sig": signature,
            "pss": "RSA_PKCS1_PSS_PADDING"}});
        run_node("CryptoVerifyNode", &config, payload).unwrap()
    }

    fn verify(changes: Value, key: &str, signature: &str) -> usize {
        let (port, after) = verify_with(changes, key, signature, MESSAGE);
        if port == 0 {
            assert!(after.get("working").is_none(), "{after}");
        }
        port
    }

    fn sign(changes: Value, key: &str, message: &str) -> String {
        let mut config = json!({"keyTemplate": "{{{data.key}}}", "dataTemplate": "{{data.msg}}",
            "resultPath": "out"});
        for (k, v) in changes.as_object().unwrap() {
            config[k] = v.clone();
        }
        let payload = json!({"data": {"key": key, "msg": message}});
        let (_, after) = run_node("CryptoSignNode", &config, payload).unwrap();
        after["out"]["signature"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", after["out"]))
            .to_owned()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn openssl_signatures_verify() {
        for public in [RSA_PUBLIC, RSA_PUBLIC_PKCS1, RSA_CERT, RSA_PRIVATE_PKCS8] {
            assert_eq!(verify(json!({}), public, RSA_PKCS1_SHA256), 1);
        }
        assert_eq!(
            verify(
                json!({"algorithmTemplate": "MD5"}),
                RSA_PUBLIC,
                RSA_PKCS1_MD5
            ),
            1
        );
        assert_eq!(
            verify(
                json!({"algorithmTemplate": "sha1"}),
                RSA_CERT,
                RSA_PKCS1_SHA1
            ),
            1
        );
        // The wrong digest does not verify.
        assert_eq!(
            verify(
                json!({"algorithmTemplate": "SHA1"}),
                RSA_PUBLIC,
                RSA_PKCS1_SHA256
            ),
            0
        );
        // PSS with the largest salt and with a digest-length salt.
        let pss = json!({"paddingTemplate": "{{data.pss}}"});
        assert_eq!(verify(pss.clone(), RSA_PUBLIC, RSA_PSS_SHA256_MAX), 1);
        assert_eq!(verify(pss.clone(), RSA_PUBLIC, RSA_PKCS1_SHA256), 0);
        assert_eq!(verify(json!({}), RSA_PUBLIC, RSA_PSS_SHA256_MAX), 0);
        let pss384 = json!({"paddingTemplate": "RSA_PKCS1_PSS_PADDING",
            "algorithmTemplate": "SHA384"});
        assert_eq!(verify(pss384, RSA_CERT, RSA_PSS_SHA384_DIGEST), 1);
        assert_eq!(
            verify(pss.clone(), RSA1025_PUBLIC, RSA1025_PSS_SHA256_MAX),
            1
        );
        // ECDSA, DER and the same signature as r || s.
        assert_eq!(verify(json!({}), P256_PUBLIC, P256_SHA256_DER), 1);
        let der = base64_decode(P256_SHA256_DER);
        let parsed = p256::ecdsa::Signature::from_der(&der).unwrap();
        let p1363 = base64_encode(&parsed.to_bytes());
        let ieee = json!({"dsaEncodingTemplate": "ieee-p1363"});
        assert_eq!(verify(ieee.clone(), P256_PUBLIC, &p1363), 1);
        assert_eq!(verify(ieee, P256_PUBLIC, P256_SHA256_DER), 0);
        assert_eq!(verify(json!({}), P256_PUBLIC, &p1363), 0);
        // P-384 with SHA1, a digest shorter than half the curve's order.
        let sha1 = json!({"algorithmTemplate": "SHA1"});
        assert_eq!(verify(sha1.clone(), P384_SEC1_PUBLIC, P384_SHA1_DER), 1);
        assert_eq!(verify(sha1, P384_PUBLIC, P384_SHA1_DER), 0);
        // Ed25519.
        assert_eq!(verify(json!({}), ED25519_PUBLIC, ED25519_SIGNATURE), 1);
        // Hex and latin1 signatures.
        let bytes = base64_decode(RSA_PKCS1_SHA256);
        let as_hex = json!({"signatureEncodingTemplate": "hex"});
        assert_eq!(verify(as_hex.clone(), RSA_PUBLIC, &hex(&bytes)), 1);
        assert_eq!(
            verify(as_hex.clone(), RSA_PUBLIC, &hex(&bytes).to_uppercase()),
            1
        );
        let latin1: String = bytes.iter().map(|b| char::from(*b)).collect();
        let as_latin1 = json!({"signatureEncodingTemplate": "latin1"});
        assert_eq!(verify(as_latin1.clone(), RSA_PUBLIC, &latin1), 1);
        // Undecodable signatures are just invalid.
        assert_eq!(verify(as_hex, RSA_PUBLIC, "zz"), 0);
        assert_eq!(verify(as_latin1, RSA_PUBLIC, "\u{1F600}"), 0);
        assert_eq!(verify(json!({}), RSA_PUBLIC, "AAAA"), 0);
        assert_eq!(verify(json!({}), ED25519_PUBLIC, "AAAA"), 0);
        assert_eq!(verify(json!({}), P256_PUBLIC, "AAAA"), 0);
    }

    #[test]
    fn sign_then_verify_round_trips_and_tampering_fails() {
        let cases = [
            (json!({}), RSA_PRIVATE_PKCS1, RSA_PUBLIC),
            (
                json!({"paddingTemplate": "RSA_PKCS1_PSS_PADDING", "algorithmTemplate": "SHA512"}),
                RSA_PRIVATE_PKCS8,
                RSA_CERT,
            ),
            (
                json!({"paddingTemplate": "RSA_PKCS1_PSS_PADDING", "algorithmTemplate": "MD5"}),
                RSA1025_PRIVATE,
                RSA1025_PUBLIC,
            ),
            (
                json!({"dsaEncodingTemplate": "der"}),
                P256_PRIVATE_SEC1,
                P256_PUBLIC,
            ),
            (
                json!({"dsaEncodingTemplate": "ieee-p1363", "signatureEncodingTemplate": "hex"}),
                P256_PRIVATE_PKCS8,
                P256_PUBLIC,
            ),
            (
                json!({"algorithmTemplate": "SHA384", "signatureEncodingTemplate": "latin1"}),
                P384_PRIVATE_PKCS8,
                P384_PUBLIC,
            ),
            (
                json!({"dsaEncodingTemplate": "ieee-p1363", "algorithmTemplate": "MD5"}),
                P384_SEC1_WITH_PARAMETERS,
                P384_SEC1_PUBLIC,
            ),
            (json!({}), ED25519_PRIVATE, ED25519_PUBLIC),
        ];
        for (options, private, public) in cases {
            let signature = sign(options.clone(), private, "the message");
            let (port, after) = verify_with(options.clone(), public, &signature, "the message");
            assert_eq!(port, 1, "{options} {public}");
            assert!(after.get("working").is_none());
            let (port, after) = verify_with(options.clone(), public, &signature, "the messagE");
            assert_eq!(port, 0, "{options} {public}");
            assert!(after.get("working").is_none(), "a mismatch writes nothing");
        }
    }

    #[test]
    fn failures_write_the_result_path_and_take_port_0() {
        let failed = |changes: Value, key: &str| {
            let (port, after) = verify_with(changes, key, RSA_PKCS1_SHA256, MESSAGE);
            assert_eq!(port, 0);
            after["working"]["verifyErr"]["error"]["message"]
                .as_str()
                .unwrap_or_else(|| panic!("{after}"))
                .to_owned()
        };
        let e = failed(json!({}), "garbage");
        assert!(e.contains("not a PEM public key"), "{e}");
        let e = failed(json!({}), &RSA_PUBLIC.replace("MII", "MIA"));
        assert!(e.contains("cannot be read"), "{e}");
        let e = failed(json!({"keyTemplate": "data.nothing"}), RSA_PUBLIC);
        assert!(e.contains("data.nothing"), "{e}");
        let e = failed(json!({"paddingTemplate": "{{data.msg}}"}), RSA_PUBLIC);
        assert!(e.contains("paddingTemplate must be one of"), "{e}");
        let e = failed(
            json!({"dataEncodingTemplate": "hex", "dataTemplate": "abc"}),
            RSA_PUBLIC,
        );
        assert!(e.contains("hex"), "{e}");
        // Without a resultPath the invalid port is still taken.
        let config = json!({"keyTemplate": "nope", "dataTemplate": "x", "signatureTemplate": "y"});
        let (port, after) = run_node("CryptoVerifyNode", &config, json!({"a": 1})).unwrap();
        assert_eq!((port, after), (0, json!({"a": 1})));
    }

    #[test]
    fn template_failures_halt() {
        let config = json!({"keyTemplate": "{{{data.key}}}", "dataTemplate": "{{data.msg}}",
            "signatureTemplate": "{{data.sig}}", "resultPath": "r"});
        for payload in [
            json!({"data": {"msg": "x", "sig": "AAAA"}}),
            json!({"data": {"key": RSA_PUBLIC, "sig": "AAAA"}}),
            json!({"data": {"key": RSA_PUBLIC, "msg": "x"}}),
            json!({"data": {"key": "bad", "msg": "x"}}),
        ] {
            let e = run_node("CryptoVerifyNode", &config, payload).unwrap_err();
            assert_eq!(e.name, ErrorName::TemplateError);
        }
    }

    #[test]
    fn config_is_checked() {
        let ok = json!({"keyTemplateType": "payloadPath", "keyTemplate": "working.pub",
            "dataTemplate": "{{data.body.msg}}", "signatureTemplate": "{{data.body.sig}}",
            "dataEncodingTemplate": "utf8", "algorithmTemplate": "SHA256",
            "paddingTemplate": "RSA_PKCS1_PADDING", "dsaEncodingTemplate": "der",
            "signatureEncodingTemplate": "base64", "resultPath": "working.verifyErr"});
        assert_eq!(compile_node("CryptoVerifyNode", &ok).unwrap().ports, 2);
        let base = json!({"keyTemplate": "{{{k}}}", "dataTemplate": "x",
            "signatureTemplate": "{{s}}"});
        assert_eq!(compile_node("CryptoVerifyNode", &base).unwrap().ports, 2);
        for (changes, needle) in [
            (
                json!({"signatureTemplate": ""}),
                "signatureTemplate is required",
            ),
            (
                json!({"signatureTemplate": null}),
                "signatureTemplate is required",
            ),
            (json!({"dataTemplate": ""}), "dataTemplate is required"),
            (json!({"keyTemplate": null}), "keyTemplate is required"),
            (json!({"keyTemplateType": "diskPath"}), "diskPath"),
            (json!({"keyTemplateType": "url"}), "keyTemplateType"),
            (
                json!({"credentialNameTemplate": "partner-pubkey"}),
                "stored credentials) is not supported yet",
            ),
            (json!({"resultPath": "a..b"}), "resultPath"),
            (json!({"algorithmTemplate": "SHA3"}), "algorithmTemplate"),
            (json!({"paddingTemplate": "OAEP"}), "paddingTemplate"),
            (
                json!({"dsaEncodingTemplate": "p1363"}),
                "dsaEncodingTemplate",
            ),
            (
                json!({"signatureEncodingTemplate": "base32"}),
                "signatureEncodingTemplate",
            ),
            (
                json!({"dataEncodingTemplate": "ucs2"}),
                "dataEncodingTemplate",
            ),
            (
                json!({"signatureTemplate": "{{#each}}"}),
                "signatureTemplate",
            ),
            (json!({"signatureTemplate": ["x"]}), "config"),
        ] {
            let mut config = base.clone();
            for (k, v) in changes.as_object().unwrap() {
                config[k] = v.clone();
            }
            let e = compile_node("CryptoVerifyNode", &config)
                .err()
                .expect("refused");
            assert!(e.0.contains("(CryptoVerifyNode)"), "{config}: {e}");
            assert!(e.0.contains(needle), "{config}: {e} lacks {needle}");
        }
    }
}
