//! `HashNode` ("Crypto: Hash"): writes the digest of `dataTemplate` to `destinationPath` as
//! text. With a `secretTemplate` that renders non-empty the digest is an HMAC keyed by it. One
//! port; failures halt.
//!
//! | field | values | default |
//! |---|---|---|
//! | `algorithmTemplate` | `MD5`, `SHA1`, `SHA256`, `SHA512`, `RIPEMD` (RIPEMD-160), `Whirlpool` | `SHA256` |
//! | `encodingTemplate` (the digest) | `hex`, `base64`, `latin1` | `hex` |
//! | `dataEncodingTemplate`, `secretEncodingTemplate` (how the text is turned into bytes) | `utf8`, `hex`, `base64`, `latin1`, `ascii` | `utf8` |
//!
//! Decisions:
//! * Names are matched without regard to case, `-` or `_` (`sha-256`, `Sha256`), with Node's
//!   aliases: `RIPEMD160`/`RMD160` for `RIPEMD`, `binary` for `latin1`, `utf-8` for `utf8`.
//!   `SHA224` and `SHA384` are accepted as well. A static value (no `{{`) that is not known is a
//!   compile error; a rendered one halts with `ValidationError`; a blank one is the default.
//! * `dataTemplate` is required: missing or blank is a compile error, rendering empty halts
//!   with `TemplateError` (FLOW-JSON §7.4).
//! * Input encodings follow Node's `Buffer.from(text, encoding)`, except that `hex` is strict:
//!   an odd length or a non-hex character halts with `ValidationError` (Node silently stops at
//!   the first bad pair). `base64` is lenient as Node's is. `latin1`/`ascii` keep the low byte
//!   of each character. The `latin1` digest maps each byte to the character U+0000–U+00FF.
//! * Hex digests are lower-case, Base64 ones padded, as Node's `digest()` gives them.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{path, render, render_required, template};
use crate::path::PayloadPath;
use crate::template::encode::{base64_decode, base64_encode};
use crate::template::Template;
use hmac::digest::core_api::BlockSizeUser;
use hmac::digest::Digest;
use hmac::{Mac, SimpleHmac};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    data_template: Option<String>,
    algorithm_template: Option<String>,
    secret_template: Option<String>,
    encoding_template: Option<String>,
    data_encoding_template: Option<String>,
    secret_encoding_template: Option<String>,
    destination_path: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Ripemd160,
    Whirlpool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutputEncoding {
    Hex,
    Base64,
    Latin1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputEncoding {
    Utf8,
    Hex,
    Base64,
    Latin1,
}

/// Lower-cased, without `-` and `_`.
fn normalize(text: &str) -> String {
    text.trim()
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// A setting read from a name; blank gives the default.
pub(crate) trait Named: Copy + Sized {
    const FIELD: &'static str;
    const NAMES: &'static str;
    const DEFAULT: Self;
    fn from_normalized(name: &str) -> Option<Self>;

    fn parse(text: &str) -> Result<Self, String> {
        let name = normalize(text);
        if name.is_empty() {
            return Ok(Self::DEFAULT);
        }
        Self::from_normalized(&name).ok_or_else(|| {
            format!(
                "{} must be one of {}, not \"{}\"",
                Self::FIELD,
                Self::NAMES,
                text.trim()
            )
        })
    }
}

impl Named for Algorithm {
    const FIELD: &'static str = "algorithmTemplate";
    const NAMES: &'static str = "MD5, SHA1, SHA256, SHA512, RIPEMD, Whirlpool";
    const DEFAULT: Self = Algorithm::Sha256;
    fn from_normalized(name: &str) -> Option<Self> {
        Some(match name {
            "md5" => Algorithm::Md5,
            "sha1" => Algorithm::Sha1,
            "sha224" => Algorithm::Sha224,
            "sha256" => Algorithm::Sha256,
            "sha384" => Algorithm::Sha384,
            "sha512" => Algorithm::Sha512,
            "ripemd" | "ripemd160" | "rmd160" => Algorithm::Ripemd160,
            "whirlpool" => Algorithm::Whirlpool,
            _ => return None,
        })
    }
}

impl Named for OutputEncoding {
    const FIELD: &'static str = "encodingTemplate";
    const NAMES: &'static str = "hex, base64, latin1";
    const DEFAULT: Self = OutputEncoding::Hex;
    fn from_normalized(name: &str) -> Option<Self> {
        Some(match name {
            "hex" => OutputEncoding::Hex,
            "base64" => OutputEncoding::Base64,
            "latin1" | "binary" => OutputEncoding::Latin1,
            _ => return None,
        })
    }
}

impl Named for InputEncoding {
    const FIELD: &'static str = "dataEncodingTemplate / secretEncodingTemplate";
    const NAMES: &'static str = "utf8, hex, base64, latin1, ascii";
    const DEFAULT: Self = InputEncoding::Utf8;
    fn from_normalized(name: &str) -> Option<Self> {
        Some(match name {
            "utf8" => InputEncoding::Utf8,
            "hex" => InputEncoding::Hex,
            "base64" => InputEncoding::Base64,
            "latin1" | "binary" | "ascii" => InputEncoding::Latin1,
            _ => return None,
        })
    }
}

/// A setting fixed when the flow is compiled, or rendered per run.
pub(crate) enum Choice<T> {
    Fixed(T),
    Template(Template),
}

impl<T: Named> Choice<T> {
    pub(crate) fn compile(
        spec: &NodeSpec<'_>,
        field: &str,
        text: Option<&str>,
    ) -> Result<Self, CompileError> {
        let text = text.unwrap_or_default();
        let compiled = template(spec, field, text)?;
        match compiled.static_text() {
            Some(text) => T::parse(text)
                .map(Choice::Fixed)
                .map_err(|e| spec.error(e.replace(T::FIELD, field))),
            None => Ok(Choice::Template(compiled)),
        }
    }

    pub(crate) fn get(&self, field: &str, payload: &Value) -> Result<T, NodeError> {
        match self {
            Choice::Fixed(value) => Ok(*value),
            Choice::Template(t) => T::parse(&render(t, payload)?).map_err(|e| {
                NodeError::new(ErrorName::ValidationError, e.replace(T::FIELD, field))
            }),
        }
    }
}

pub struct Hash {
    data: Template,
    algorithm: Choice<Algorithm>,
    secret: Option<Template>,
    encoding: Choice<OutputEncoding>,
    data_encoding: Choice<InputEncoding>,
    secret_encoding: Choice<InputEncoding>,
    destination: PayloadPath,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let data = match config.data_template.as_deref() {
        Some(text) if !text.is_empty() => template(spec, "dataTemplate", text)?,
        _ => return Err(spec.error("dataTemplate is required")),
    };
    let secret = match config.secret_template.as_deref() {
        Some(text) if !text.is_empty() => Some(template(spec, "secretTemplate", text)?),
        _ => None,
    };
    let destination = match config.destination_path.as_deref() {
        Some(text) if !text.trim().is_empty() => path(spec, "destinationPath", text)?,
        _ => return Err(spec.error("destinationPath is required")),
    };
    Ok(CompiledNodeType::new(
        Hash {
            data,
            algorithm: Choice::compile(
                spec,
                "algorithmTemplate",
                config.algorithm_template.as_deref(),
            )?,
            secret,
            encoding: Choice::compile(
                spec,
                "encodingTemplate",
                config.encoding_template.as_deref(),
            )?,
            data_encoding: Choice::compile(
                spec,
                "dataEncodingTemplate",
                config.data_encoding_template.as_deref(),
            )?,
            secret_encoding: Choice::compile(
                spec,
                "secretEncodingTemplate",
                config.secret_encoding_template.as_deref(),
            )?,
            destination,
        },
        1,
    ))
}

/// Text to bytes, as `Buffer.from(text, encoding)` (hex strictly).
pub(crate) fn decode_input(
    text: &str,
    encoding: InputEncoding,
    field: &str,
) -> Result<Vec<u8>, NodeError> {
    Ok(match encoding {
        InputEncoding::Utf8 => text.as_bytes().to_vec(),
        InputEncoding::Latin1 => text.chars().map(|c| (c as u32 & 0xff) as u8).collect(),
        InputEncoding::Base64 => base64_decode(text),
        InputEncoding::Hex => {
            let digits = text.trim().as_bytes();
            if digits.len() & 1 == 1 || !digits.iter().all(u8::is_ascii_hexdigit) {
                return Err(NodeError::new(
                    ErrorName::ValidationError,
                    format!("{field} is not hex text (pairs of 0-9, a-f)"),
                ));
            }
            digits
                .chunks(2)
                .map(|pair| {
                    u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("00"), 16).unwrap_or(0)
                })
                .collect()
        }
    })
}

/// Bytes to text, as `digest(encoding)`.
pub(crate) fn encode_output(bytes: &[u8], encoding: OutputEncoding) -> String {
    match encoding {
        OutputEncoding::Hex => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        OutputEncoding::Base64 => base64_encode(bytes),
        OutputEncoding::Latin1 => bytes.iter().map(|b| char::from(*b)).collect(),
    }
}

fn digest_with<D: Digest + BlockSizeUser + Clone>(data: &[u8], key: Option<&[u8]>) -> Vec<u8> {
    match key {
        None => D::digest(data).to_vec(),
        Some(key) => {
            let mut mac =
                <SimpleHmac<D> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// The digest (or HMAC, with a key) of `data`.
pub(crate) fn digest(algorithm: Algorithm, data: &[u8], key: Option<&[u8]>) -> Vec<u8> {
    match algorithm {
        Algorithm::Md5 => digest_with::<md5::Md5>(data, key),
        Algorithm::Sha1 => digest_with::<sha1::Sha1>(data, key),
        Algorithm::Sha224 => digest_with::<sha2::Sha224>(data, key),
        Algorithm::Sha256 => digest_with::<sha2::Sha256>(data, key),
        Algorithm::Sha384 => digest_with::<sha2::Sha384>(data, key),
        Algorithm::Sha512 => digest_with::<sha2::Sha512>(data, key),
        Algorithm::Ripemd160 => digest_with::<ripemd::Ripemd160>(data, key),
        Algorithm::Whirlpool => digest_with::<whirlpool::Whirlpool>(data, key),
    }
}

impl Node for Hash {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let algorithm = self.algorithm.get("algorithmTemplate", payload)?;
        let encoding = self.encoding.get("encodingTemplate", payload)?;
        let text = render_required(&self.data, "dataTemplate", payload)?;
        let data_encoding = self.data_encoding.get("dataEncodingTemplate", payload)?;
        let data = decode_input(&text, data_encoding, "dataTemplate")?;
        let secret = match &self.secret {
            Some(t) => {
                let text = render(t, payload)?;
                if text.is_empty() {
                    None
                } else {
                    let encoding = self
                        .secret_encoding
                        .get("secretEncodingTemplate", payload)?;
                    Some(decode_input(&text, encoding, "secretTemplate")?)
                }
            }
            None => None,
        };
        let digest = digest(algorithm, &data, secret.as_deref());
        self.destination
            .set(payload, Value::String(encode_output(&digest, encoding)));
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn hash(config: Value) -> Result<String, crate::error::NodeError> {
        let mut config = config;
        config["destinationPath"] = json!("working.h");
        let payload = json!({"data": {"body": "abc", "key": "key", "fox":
            "The quick brown fox jumps over the lazy dog", "empty": "", "algo": "md5"}});
        run_node("HashNode", &config, payload)
            .map(|(_, p)| p["working"]["h"].as_str().unwrap().to_owned())
    }

    fn plain(algorithm: &str) -> String {
        hash(json!({"dataTemplate": "{{data.body}}", "algorithmTemplate": algorithm})).unwrap()
    }

    #[test]
    fn known_digests_of_abc() {
        assert_eq!(plain("MD5"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(plain("SHA1"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            plain("SHA256"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(plain(""), plain("SHA256"), "SHA256 is the default");
        assert_eq!(
            plain("SHA512"),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        assert_eq!(plain("RIPEMD"), "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc");
        assert_eq!(plain("ripemd160"), plain("RIPEMD"));
        assert_eq!(
            plain("Whirlpool"),
            "4e2448a4c6f486bb16b6562c73b4020bf3043e3a731bce721ae1b303d97e6d4c\
             7181eebdb6c57e277d0e34957114cbd6c797fc9d95d8b582d225292076d4eef5"
        );
        assert_eq!(plain("sha-256"), plain("SHA256"));
    }

    #[test]
    fn hmac() {
        let h = hash(
            json!({"dataTemplate": "{{data.fox}}", "secretTemplate": "{{data.key}}",
            "algorithmTemplate": "SHA256"}),
        )
        .unwrap();
        assert_eq!(
            h,
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let h = hash(
            json!({"dataTemplate": "{{data.fox}}", "secretTemplate": "key",
            "algorithmTemplate": "MD5"}),
        )
        .unwrap();
        assert_eq!(h, "80070713463e7749b90c2dc24911e275");
        // A secret that renders empty is a plain hash.
        let h = hash(json!({"dataTemplate": "abc", "secretTemplate": "{{data.empty}}"})).unwrap();
        assert_eq!(h, plain("SHA256"));
        // Hex-encoded secret: "key" is 6b6579.
        let h = hash(
            json!({"dataTemplate": "{{data.fox}}", "secretTemplate": "6B6579",
            "secretEncodingTemplate": "hex", "algorithmTemplate": "MD5"}),
        )
        .unwrap();
        assert_eq!(h, "80070713463e7749b90c2dc24911e275");
    }

    #[test]
    fn encodings() {
        let b64 = hash(json!({"dataTemplate": "abc", "algorithmTemplate": "MD5",
            "encodingTemplate": "base64"}))
        .unwrap();
        assert_eq!(b64, "kAFQmDzST7DWlj99KOF/cg==");
        let latin1 = hash(json!({"dataTemplate": "abc", "algorithmTemplate": "MD5",
            "encodingTemplate": "latin1"}))
        .unwrap();
        assert_eq!(latin1.chars().count(), 16);
        assert_eq!(latin1.chars().next(), Some('\u{90}'));
        // The data's encoding: "abc" as hex, as base64, as latin1.
        for (data, encoding) in [
            ("616263", "hex"),
            ("YWJj", "base64"),
            ("abc", "latin1"),
            ("abc", "utf-8"),
        ] {
            let h = hash(json!({"dataTemplate": data, "dataEncodingTemplate": encoding})).unwrap();
            assert_eq!(h, plain("SHA256"), "{encoding}");
        }
        // Templated choices.
        let h = hash(json!({"dataTemplate": "abc", "algorithmTemplate": "{{data.algo}}"})).unwrap();
        assert_eq!(h, plain("MD5"));
    }

    #[test]
    fn failures_halt() {
        let fail = |config: Value| hash(config).unwrap_err();
        assert_eq!(
            fail(json!({"dataTemplate": "{{data.empty}}"})).name,
            ErrorName::TemplateError
        );
        assert_eq!(
            fail(json!({"dataTemplate": "abc", "algorithmTemplate": "{{data.body}}"})).name,
            ErrorName::ValidationError
        );
        assert_eq!(
            fail(json!({"dataTemplate": "abc", "encodingTemplate": "{{data.body}}"})).name,
            ErrorName::ValidationError
        );
        assert_eq!(
            fail(json!({"dataTemplate": "xyz", "dataEncodingTemplate": "hex"})).name,
            ErrorName::ValidationError
        );
        assert_eq!(
            fail(json!({"dataTemplate": "abc", "dataEncodingTemplate": "hex"})).name,
            ErrorName::ValidationError
        );
    }

    #[test]
    fn config_is_checked() {
        let ok = json!({"dataTemplate": "x", "destinationPath": "w.h", "algorithmTemplate": "",
            "encodingTemplate": "", "dataEncodingTemplate": "utf8", "secretTemplate": ""});
        assert_eq!(compile_node("HashNode", &ok).unwrap().ports, 1);
        for bad in [
            json!({"destinationPath": "w.h"}),
            json!({"dataTemplate": "", "destinationPath": "w.h"}),
            json!({"dataTemplate": "x"}),
            json!({"dataTemplate": "x", "destinationPath": "{{w}}"}),
            json!({"dataTemplate": "x", "destinationPath": "w.h", "algorithmTemplate": "SHA3"}),
            json!({"dataTemplate": "x", "destinationPath": "w.h", "encodingTemplate": "utf8"}),
            json!({"dataTemplate": "x", "destinationPath": "w.h", "dataEncodingTemplate": "ebcdic"}),
            json!({"dataTemplate": "x", "destinationPath": "w.h", "secretEncodingTemplate": "utf16"}),
            json!({"dataTemplate": "{{#if}}", "destinationPath": "w.h"}),
            json!({"dataTemplate": "x", "destinationPath": "w.h", "secretTemplate": 5}),
        ] {
            let error = compile_node("HashNode", &bad).err().expect("refused");
            assert!(error.0.contains("(HashNode)"), "{bad}: {error}");
        }
    }
}
