//! `CryptoSignNode` ("Crypto: Sign"): signs `dataTemplate` with a private key and writes
//! `{"signature": "<text>"}` to `resultPath`. One port.
//!
//! | field | values | default |
//! |---|---|---|
//! | `keyTemplateType` | `stringTemplate` (`keyTemplate` renders the PEM), `payloadPath` (`keyTemplate` is the payload path holding it) | `stringTemplate` |
//! | `algorithmTemplate` (the digest) | `MD5`, `SHA1`, `SHA224`, `SHA256`, `SHA384`, `SHA512` | `SHA256` |
//! | `paddingTemplate` (RSA) | `RSA_PKCS1_PADDING`, `RSA_PKCS1_PSS_PADDING` | `RSA_PKCS1_PADDING` |
//! | `dsaEncodingTemplate` (ECDSA) | `der`, `ieee-p1363` | `der` |
//! | `signatureEncodingTemplate` | `base64`, `hex`, `latin1` | `base64` |
//! | `dataEncodingTemplate` | `utf8`, `hex`, `base64`, `latin1`, `ascii` | `utf8` |
//!
//! The signature is what Node.js's `crypto.sign(algorithm, data, {key, padding,
//! dsaEncoding})` gives (see `crypto_keys` for the key forms and the details):
//! * RSA PKCS#1 v1.5 signatures are byte for byte those of `openssl dgst -sign`.
//! * RSA-PSS uses the largest salt the key allows (Node's default for signing,
//!   `RSA_PSS_SALTLEN_MAX_SIGN`); any PSS verifier with automatic salt length, or told that
//!   length, accepts it.
//! * ECDSA (P-256, P-384) signs the chosen digest, with deterministic nonces (RFC 6979).
//! * Ed25519 ignores the algorithm, padding and DSA encoding.
//!
//! Decisions:
//! * Failures of the signing itself — a key that cannot be read or is not a private key, no
//!   key at the `payloadPath`, an RSA key too small for the digest, a rendered setting that
//!   is not one of its values, data that is not in its encoding (hex is strict) — write
//!   `{"error": {"message": …}}` to `resultPath`, and the run continues.
//! * Template failures halt (`TemplateError`); `keyTemplate` (as a template) and `dataTemplate`
//!   are required, so rendering empty halts too. A setting given as plain text (no `{{`) that
//!   is not one of its values is a compile error; blank means the default. Names are matched
//!   without regard to case, `-` or `_` (`sha-256`, `RSA-SHA256`, `ieee_p1363`).
//! * `keyTemplateType: diskPath` (a key file on an Edge Agent) and a non-blank
//!   `credentialNameTemplate` (stored credentials, not supported yet) are compile errors.
//! * Templates HTML-escape as Handlebars does (`=` becomes `&#x3D;`); in the key that is read
//!   back as `=` (PEM holds no `&`), so `{{globals.privateKey}}` and `{{{…}}}` both work. The
//!   data is signed as rendered, escapes included, as Crypto: Hash hashes it.

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::logic::crypto_keys::{Common, CommonConfig, Failure, PrivateKey};
use crate::nodes::logic::hash::encode_output;
use crate::nodes::path;
use crate::path::PayloadPath;
use serde_json::{json, Value};

pub struct CryptoSign {
    common: Common,
    result: PayloadPath,
}

/// Sign's config is the fields it shares with Verify.
pub(crate) type Config = CommonConfig;

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: CommonConfig = spec.config()?;
    let common = Common::compile(spec, &config, "private key")?;
    let result = match config.result_path.as_deref() {
        Some(text) if !text.trim().is_empty() => path(spec, "resultPath", text.trim())?,
        _ => return Err(spec.error("resultPath is required")),
    };
    Ok(CompiledNodeType::new(CryptoSign { common, result }, 1))
}

impl CryptoSign {
    fn sign(&self, payload: &Value) -> Result<String, Failure> {
        let prepared = self.common.prepare(payload)?;
        let key = PrivateKey::from_pem(prepared.key_text()?)?;
        let signature = key.sign(&prepared.data, prepared.options)?;
        Ok(encode_output(&signature, prepared.signature_encoding.0))
    }
}

impl Node for CryptoSign {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let result = match self.sign(payload) {
            Ok(signature) => json!({ "signature": signature }),
            Err(Failure::Halt(error)) => return Err(error),
            Err(Failure::Action(message)) => json!({"error": {"message": message}}),
        };
        self.result.set(payload, result);
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::nodes::logic::crypto_keys::test_keys::*;
    use crate::template::encode::base64_decode;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    /// Runs the node with `changes` over a base config, the key at `data.key`.
    fn sign(changes: Value, key: &str) -> Value {
        let mut config = json!({"keyTemplateType": "payloadPath", "keyTemplate": "data.key",
            "dataTemplate": "{{data.msg}}", "resultPath": "working.signed"});
        for (k, v) in changes.as_object().unwrap() {
            config[k] = v.clone();
        }
        let payload = json!({"data": {"key": key, "msg": MESSAGE, "alg": "sha384",
            "bad": "SHA3"}});
        let (port, after) = run_node("CryptoSignNode", &config, payload).unwrap();
        assert_eq!(port, 0);
        after["working"]["signed"].clone()
    }

    fn signature(changes: Value, key: &str) -> String {
        let result = sign(changes, key);
        result["signature"]
            .as_str()
            .unwrap_or_else(|| panic!("{result}"))
            .to_owned()
    }

    #[test]
    fn rsa_pkcs1_matches_openssl_exactly() {
        assert_eq!(signature(json!({}), RSA_PRIVATE_PKCS1), RSA_PKCS1_SHA256);
        let changes = json!({"algorithmTemplate": "SHA256",
            "paddingTemplate": "RSA_PKCS1_PADDING", "signatureEncodingTemplate": "base64"});
        assert_eq!(signature(changes, RSA_PRIVATE_PKCS8), RSA_PKCS1_SHA256);
        assert_eq!(
            signature(json!({"algorithmTemplate": "MD5"}), RSA_PRIVATE_PKCS8),
            RSA_PKCS1_MD5
        );
        assert_eq!(
            signature(json!({"algorithmTemplate": "RSA-SHA1"}), RSA_PRIVATE_PKCS1),
            RSA_PKCS1_SHA1
        );
        // Hex and latin1 are the same bytes.
        let bytes = base64_decode(RSA_PKCS1_SHA256);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            signature(
                json!({"signatureEncodingTemplate": "hex"}),
                RSA_PRIVATE_PKCS1
            ),
            hex
        );
        let latin1: String = bytes.iter().map(|b| char::from(*b)).collect();
        assert_eq!(
            signature(
                json!({"signatureEncodingTemplate": "latin1"}),
                RSA_PRIVATE_PKCS1
            ),
            latin1
        );
        // The data's encoding: "hello flowd" as hex and base64.
        let as_hex: String = MESSAGE.bytes().map(|b| format!("{b:02x}")).collect();
        let changes = json!({"dataTemplate": as_hex, "dataEncodingTemplate": "hex"});
        assert_eq!(signature(changes, RSA_PRIVATE_PKCS1), RSA_PKCS1_SHA256);
        let changes = json!({"dataTemplate": "aGVsbG8gZmxvd2Q=", "dataEncodingTemplate": "base64"});
        assert_eq!(signature(changes, RSA_PRIVATE_PKCS1), RSA_PKCS1_SHA256);
        // The key as a template, with three braces or two (`=` escaped to `&#x3D;`).
        for key in ["{{{globals.key}}}", "{{globals.key}}"] {
            let config = json!({"keyTemplate": key, "dataTemplate": "hello flowd",
                "resultPath": "out"});
            let (_, after) = run_node(
                "CryptoSignNode",
                &config,
                json!({"globals": {"key": RSA_PRIVATE_PKCS1}}),
            )
            .unwrap();
            assert_eq!(
                after["out"],
                json!({ "signature": RSA_PKCS1_SHA256 }),
                "{key}"
            );
        }
    }

    #[test]
    fn pss_ecdsa_and_ed25519_sign() {
        // PSS is randomised: two signatures differ, both 256 bytes.
        let changes = json!({"paddingTemplate": "RSA_PKCS1_PSS_PADDING"});
        let a = signature(changes.clone(), RSA_PRIVATE_PKCS8);
        let b = signature(changes, RSA_PRIVATE_PKCS8);
        assert_ne!(a, b);
        assert_eq!(base64_decode(&a).len(), 256);
        // ECDSA: DER is a SEQUENCE of two INTEGERs; IEEE-P1363 is 64 / 96 bytes.
        let der = base64_decode(&signature(json!({}), P256_PRIVATE_SEC1));
        assert_eq!(der[0], 0x30);
        let raw = base64_decode(&signature(
            json!({"dsaEncodingTemplate": "ieee-p1363"}),
            P256_PRIVATE_PKCS8,
        ));
        assert_eq!(raw.len(), 64);
        let raw = base64_decode(&signature(
            json!({"dsaEncodingTemplate": "ieee-p1363", "algorithmTemplate": "{{data.alg}}"}),
            P384_SEC1_WITH_PARAMETERS,
        ));
        assert_eq!(raw.len(), 96);
        // Ed25519 is deterministic: OpenSSL's bytes, whatever the algorithm says.
        assert_eq!(signature(json!({}), ED25519_PRIVATE), ED25519_SIGNATURE);
        assert_eq!(
            signature(
                json!({"algorithmTemplate": "MD5", "dsaEncodingTemplate": "ieee-p1363"}),
                ED25519_PRIVATE
            ),
            ED25519_SIGNATURE
        );
    }

    #[test]
    fn failures_are_written_to_the_result_path() {
        let error = |changes: Value, key: &str| {
            let result = sign(changes, key);
            assert!(result.get("signature").is_none(), "{result}");
            result["error"]["message"]
                .as_str()
                .unwrap_or_else(|| panic!("{result}"))
                .to_owned()
        };
        let e = error(json!({}), "not a key");
        assert!(e.contains("not a PEM private key"), "{e}");
        let e = error(json!({}), RSA_PUBLIC);
        assert!(e.contains("needs the private key"), "{e}");
        let broken = RSA_PRIVATE_PKCS1.replace("MII", "MIA");
        let e = error(json!({}), &broken);
        assert!(e.contains("cannot be read"), "{e}");
        let e = error(json!({"keyTemplate": "data.none"}), RSA_PRIVATE_PKCS1);
        assert!(e.contains("data.none"), "{e}");
        let e = error(
            json!({"algorithmTemplate": "{{data.bad}}"}),
            RSA_PRIVATE_PKCS1,
        );
        assert!(e.contains("algorithmTemplate must be one of"), "{e}");
        let e = error(
            json!({"dataTemplate": "xyz", "dataEncodingTemplate": "hex"}),
            RSA_PRIVATE_PKCS1,
        );
        assert!(e.contains("hex"), "{e}");
        // An RSA key too small for the digest: SHA512 with PKCS#1 needs a 94-byte modulus.
        let e = error(json!({"algorithmTemplate": "SHA512"}), RSA512_PRIVATE);
        assert!(e.contains("too small"), "{e}");
        // The signature replaces what was at the path before.
        let (_, after) = run_node(
            "CryptoSignNode",
            &json!({"keyTemplate": "{{{k}}}", "dataTemplate": "x", "resultPath": "r"}),
            json!({"k": ED25519_PRIVATE, "r": {"error": {"message": "old"}}}),
        )
        .unwrap();
        assert!(after["r"].get("error").is_none());
    }

    #[test]
    fn template_failures_halt() {
        let config = json!({"keyTemplate": "{{{data.key}}}", "dataTemplate": "{{data.msg}}",
            "resultPath": "r"});
        let e = run_node("CryptoSignNode", &config, json!({"data": {"msg": "x"}})).unwrap_err();
        assert_eq!(e.name, ErrorName::TemplateError);
        let e = run_node(
            "CryptoSignNode",
            &config,
            json!({"data": {"key": ED25519_PRIVATE}}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::TemplateError);
        // Even with a bad key, an empty dataTemplate halts.
        let e = run_node("CryptoSignNode", &config, json!({"data": {"key": "bad"}})).unwrap_err();
        assert_eq!(e.name, ErrorName::TemplateError);
    }

    #[test]
    fn config_is_checked() {
        let ok = json!({"keyTemplateType": "payloadPath", "keyTemplate": "working.privPem",
            "dataTemplate": "{{working.msg}}", "dataEncodingTemplate": "utf8",
            "algorithmTemplate": "SHA256", "paddingTemplate": "RSA_PKCS1_PADDING",
            "dsaEncodingTemplate": "der", "signatureEncodingTemplate": "base64",
            "resultPath": "working.signed", "somethingElse": [1]});
        assert_eq!(compile_node("CryptoSignNode", &ok).unwrap().ports, 1);
        let minimal = json!({"keyTemplate": "{{{k}}}", "dataTemplate": "x", "resultPath": "r",
            "credentialNameTemplate": "", "keyTemplateType": "stringTemplate",
            "algorithmTemplate": "", "paddingTemplate": "{{p}}"});
        assert!(compile_node("CryptoSignNode", &minimal).is_ok());
        let base = json!({"keyTemplate": "{{{k}}}", "dataTemplate": "x", "resultPath": "r"});
        for (changes, needle) in [
            (json!({"dataTemplate": null}), "dataTemplate is required"),
            (json!({"dataTemplate": " "}), "dataTemplate is required"),
            (json!({"keyTemplate": ""}), "keyTemplate is required"),
            (json!({"resultPath": ""}), "resultPath is required"),
            (json!({"resultPath": "a..b"}), "resultPath"),
            (json!({"keyTemplateType": "file"}), "keyTemplateType"),
            (json!({"keyTemplateType": "diskPath"}), "diskPath"),
            (
                json!({"keyTemplateType": "payloadPath", "keyTemplate": "{{k}}"}),
                "keyTemplate",
            ),
            (
                json!({"credentialNameTemplate": "my-key"}),
                "stored credentials) is not supported yet",
            ),
            (json!({"algorithmTemplate": "SHA3"}), "algorithmTemplate"),
            (json!({"algorithmTemplate": "RIPEMD"}), "algorithmTemplate"),
            (
                json!({"paddingTemplate": "RSA_NO_PADDING"}),
                "paddingTemplate",
            ),
            (json!({"dsaEncodingTemplate": "raw"}), "dsaEncodingTemplate"),
            (
                json!({"signatureEncodingTemplate": "utf8"}),
                "signatureEncodingTemplate",
            ),
            (
                json!({"dataEncodingTemplate": "utf16"}),
                "dataEncodingTemplate",
            ),
            (json!({"dataTemplate": "{{#if}}"}), "dataTemplate"),
            (json!({"keyTemplate": 5}), "config"),
        ] {
            let mut config = base.clone();
            for (k, v) in changes.as_object().unwrap() {
                config[k] = v.clone();
            }
            let e = compile_node("CryptoSignNode", &config)
                .err()
                .expect("refused");
            assert!(e.0.contains("(CryptoSignNode)"), "{config}: {e}");
            assert!(e.0.contains(needle), "{config}: {e} lacks {needle}");
        }
    }
}
