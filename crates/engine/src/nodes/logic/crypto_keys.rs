//! What `CryptoSignNode` and `CryptoVerifyNode` share: the config fields, where the key comes
//! from, PEM key parsing, and signing and verifying as Node.js's `crypto.sign(algorithm, data,
//! {key, padding, dsaEncoding})` and `crypto.verify(…)` do.
//!
//! Keys (PEM; several blocks may follow one another, the first key block is used):
//! * private: RSA as PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`; EC on P-256 or P-384 as
//!   SEC1 `EC PRIVATE KEY` (an `EC PARAMETERS` block before it is skipped) or PKCS#8; Ed25519
//!   as PKCS#8. Encrypted keys are refused.
//! * public: SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY`, or an X.509 `CERTIFICATE` (its
//!   subject public key; the certificate itself is not checked). A private key works too, as
//!   with Node's `crypto.verify`: its public half is used.
//! * A key that came through a JSON string with its line breaks written as `\n` (a backslash
//!   and an `n`) is read as if they were line breaks; PEM never holds a backslash.
//! * Templates HTML-escape as Handlebars does, and of what it escapes PEM text and base64
//!   hold only `=` (as `&#x3D;`). Neither can hold an `&`, so `&#x3D;` in a key or a base64
//!   signature is read back as `=`: `{{globals.key}}` works as well as `{{{globals.key}}}`.
//!
//! Signatures:
//! * RSA: `RSA_PKCS1_PADDING` (PKCS#1 v1.5, deterministic: the same bytes as `openssl dgst
//!   -sign`) or `RSA_PKCS1_PSS_PADDING` (MGF1 with the same digest). Signing uses the largest
//!   salt the key allows (`RSA_PSS_SALTLEN_MAX_SIGN`, Node's default for `sign`); verifying
//!   accepts any salt length (`RSA_PSS_SALTLEN_AUTO`, Node's default for `verify`): the salt
//!   length is read from the decoded signature and the signature then checked with it.
//!   Private-key operations are blinded.
//! * ECDSA signs the digest of the chosen algorithm (RFC 6979 deterministic nonces, which any
//!   ECDSA verifier accepts). A digest shorter than the curve's order is taken as the number
//!   it is (left-padded), a longer one is cut to its leftmost bytes, as OpenSSL does. `der`
//!   gives the ASN.1 `SEQUENCE {r, s}`, `ieee-p1363` the fixed-width `r || s`.
//! * Ed25519 signs the data itself; the algorithm, padding and DSA encoding are ignored (Node
//!   with a `null` algorithm). Padding is ignored for EC keys, DSA encoding for RSA keys.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::NodeSpec;
use crate::nodes::logic::hash::{
    decode_input, digest, Algorithm, Choice, InputEncoding, Named, OutputEncoding,
};
use crate::nodes::{path, render_required, template};
use crate::path::PayloadPath;
use crate::template::encode::base64_decode;
use crate::template::Template;
use ed25519_dalek::{Signer as _, Verifier as _};
use pkcs8::der::asn1::AnyRef;
use pkcs8::der::{Decode as _, Encode as _, Reader as _, SliceReader, Tag, TagNumber, Tagged as _};
use pkcs8::spki::SubjectPublicKeyInfoRef;
use pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, ObjectIdentifier, PrivateKeyInfo};
use rsa::pkcs1::{DecodeRsaPrivateKey as _, DecodeRsaPublicKey as _};
use rsa::rand_core::OsRng;
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use serde::Deserialize;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Config.

/// The fields both nodes have.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CommonConfig {
    pub credential_name_template: Option<String>,
    pub key_template_type: Option<String>,
    pub key_template: Option<String>,
    pub data_template: Option<String>,
    pub data_encoding_template: Option<String>,
    pub algorithm_template: Option<String>,
    pub padding_template: Option<String>,
    pub dsa_encoding_template: Option<String>,
    pub signature_encoding_template: Option<String>,
    pub result_path: Option<String>,
}

/// The digest signed (or, for ECDSA, whose value is signed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignDigest {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Named for SignDigest {
    const FIELD: &'static str = "algorithmTemplate";
    const NAMES: &'static str = "MD5, SHA1, SHA224, SHA256, SHA384, SHA512";
    const DEFAULT: Self = SignDigest::Sha256;
    fn from_normalized(name: &str) -> Option<Self> {
        // Node's OpenSSL names `RSA-SHA256` and the like mean the digest.
        let name = name.strip_prefix("rsa").unwrap_or(name);
        Some(match name {
            "md5" => SignDigest::Md5,
            "sha1" => SignDigest::Sha1,
            "sha224" => SignDigest::Sha224,
            "sha256" => SignDigest::Sha256,
            "sha384" => SignDigest::Sha384,
            "sha512" => SignDigest::Sha512,
            _ => return None,
        })
    }
}

impl SignDigest {
    fn hash(self, data: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            SignDigest::Md5 => Algorithm::Md5,
            SignDigest::Sha1 => Algorithm::Sha1,
            SignDigest::Sha224 => Algorithm::Sha224,
            SignDigest::Sha256 => Algorithm::Sha256,
            SignDigest::Sha384 => Algorithm::Sha384,
            SignDigest::Sha512 => Algorithm::Sha512,
        };
        digest(algorithm, data, None)
    }

    fn name(self) -> &'static str {
        match self {
            SignDigest::Md5 => "MD5",
            SignDigest::Sha1 => "SHA1",
            SignDigest::Sha224 => "SHA224",
            SignDigest::Sha256 => "SHA256",
            SignDigest::Sha384 => "SHA384",
            SignDigest::Sha512 => "SHA512",
        }
    }

    fn pkcs1(self) -> Pkcs1v15Sign {
        match self {
            SignDigest::Md5 => Pkcs1v15Sign::new::<md5::Md5>(),
            SignDigest::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
            SignDigest::Sha224 => Pkcs1v15Sign::new::<sha2::Sha224>(),
            SignDigest::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
            SignDigest::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
            SignDigest::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }

    /// PSS with MGF1 over this digest; blinded, for signing.
    fn pss_blinded(self, salt: usize) -> Pss {
        match self {
            SignDigest::Md5 => Pss::new_blinded_with_salt::<md5::Md5>(salt),
            SignDigest::Sha1 => Pss::new_blinded_with_salt::<sha1::Sha1>(salt),
            SignDigest::Sha224 => Pss::new_blinded_with_salt::<sha2::Sha224>(salt),
            SignDigest::Sha256 => Pss::new_blinded_with_salt::<sha2::Sha256>(salt),
            SignDigest::Sha384 => Pss::new_blinded_with_salt::<sha2::Sha384>(salt),
            SignDigest::Sha512 => Pss::new_blinded_with_salt::<sha2::Sha512>(salt),
        }
    }

    fn pss(self, salt: usize) -> Pss {
        match self {
            SignDigest::Md5 => Pss::new_with_salt::<md5::Md5>(salt),
            SignDigest::Sha1 => Pss::new_with_salt::<sha1::Sha1>(salt),
            SignDigest::Sha224 => Pss::new_with_salt::<sha2::Sha224>(salt),
            SignDigest::Sha256 => Pss::new_with_salt::<sha2::Sha256>(salt),
            SignDigest::Sha384 => Pss::new_with_salt::<sha2::Sha384>(salt),
            SignDigest::Sha512 => Pss::new_with_salt::<sha2::Sha512>(salt),
        }
    }
}

/// RSA padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Padding {
    Pkcs1,
    Pss,
}

impl Named for Padding {
    const FIELD: &'static str = "paddingTemplate";
    const NAMES: &'static str = "RSA_PKCS1_PADDING, RSA_PKCS1_PSS_PADDING";
    const DEFAULT: Self = Padding::Pkcs1;
    fn from_normalized(name: &str) -> Option<Self> {
        // Also Node's `crypto.constants` values.
        Some(match name {
            "rsapkcs1padding" | "1" => Padding::Pkcs1,
            "rsapkcs1psspadding" | "6" => Padding::Pss,
            _ => return None,
        })
    }
}

/// How an ECDSA signature is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DsaEncoding {
    Der,
    IeeeP1363,
}

impl Named for DsaEncoding {
    const FIELD: &'static str = "dsaEncodingTemplate";
    const NAMES: &'static str = "der, ieee-p1363";
    const DEFAULT: Self = DsaEncoding::Der;
    fn from_normalized(name: &str) -> Option<Self> {
        Some(match name {
            "der" => DsaEncoding::Der,
            "ieeep1363" => DsaEncoding::IeeeP1363,
            _ => return None,
        })
    }
}

/// How the signature is written as text: Hash's digest encodings, base64 by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SignatureEncoding(pub OutputEncoding);

impl Named for SignatureEncoding {
    const FIELD: &'static str = "signatureEncodingTemplate";
    const NAMES: &'static str = "base64, hex, latin1";
    const DEFAULT: Self = SignatureEncoding(OutputEncoding::Base64);
    fn from_normalized(name: &str) -> Option<Self> {
        OutputEncoding::from_normalized(name).map(SignatureEncoding)
    }
}

impl SignatureEncoding {
    /// The signature's bytes; `None` when the text is not in this encoding (hex with a stray
    /// character, latin1 with a character above U+00FF). Base64 is read leniently, as Node's
    /// `Buffer.from` reads it.
    pub(crate) fn decode(self, text: &str) -> Option<Vec<u8>> {
        match self.0 {
            OutputEncoding::Base64 => Some(base64_decode(&text.replace(ESCAPED_EQUALS, "="))),
            OutputEncoding::Hex => decode_input(text, InputEncoding::Hex, "signatureTemplate").ok(),
            OutputEncoding::Latin1 => text.chars().map(|c| u8::try_from(c).ok()).collect(),
        }
    }
}

/// Where the key comes from.
enum KeySource {
    /// A template rendering the PEM text.
    Template(Template),
    /// A payload path holding the PEM text.
    Path(PayloadPath),
}

/// A failure while running: a halting one (a template that failed or rendered empty), or one
/// of the node's own action (a bad key, a rendered setting that is not one), which the nodes
/// write to `resultPath`.
#[derive(Debug)]
pub(crate) enum Failure {
    Halt(NodeError),
    Action(String),
}

impl From<NodeError> for Failure {
    fn from(error: NodeError) -> Self {
        if error.name == ErrorName::TemplateError {
            Failure::Halt(error)
        } else {
            Failure::Action(error.message)
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Action(message)
    }
}

/// The compiled common fields.
pub(crate) struct Common {
    key: KeySource,
    data: Template,
    data_encoding: Choice<InputEncoding>,
    algorithm: Choice<SignDigest>,
    padding: Choice<Padding>,
    dsa_encoding: Choice<DsaEncoding>,
    signature_encoding: Choice<SignatureEncoding>,
}

/// How to sign or verify.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    pub digest: SignDigest,
    pub padding: Padding,
    pub dsa_encoding: DsaEncoding,
}

/// Everything rendered, ready for the key.
pub(crate) struct Prepared {
    /// The key's PEM text, or why there is none (nothing at the key's payload path).
    key: Result<String, String>,
    pub data: Vec<u8>,
    pub options: Options,
    pub signature_encoding: SignatureEncoding,
}

impl Prepared {
    pub(crate) fn key_text(&self) -> Result<&str, Failure> {
        self.key
            .as_deref()
            .map_err(|message| Failure::Action(message.clone()))
    }
}

fn filled(text: Option<&str>) -> Option<&str> {
    text.filter(|t| !t.trim().is_empty())
}

impl Common {
    pub(crate) fn compile(
        spec: &NodeSpec<'_>,
        config: &CommonConfig,
        key_kind: &str,
    ) -> Result<Common, CompileError> {
        if filled(config.credential_name_template.as_deref()).is_some() {
            return Err(spec.error(format!(
                "credentialNameTemplate (stored credentials) is not supported yet; give the \
                 {key_kind} in keyTemplate"
            )));
        }
        let key_text = filled(config.key_template.as_deref()).ok_or_else(|| {
            spec.error(format!(
                "keyTemplate is required (the PEM {key_kind}, or with keyTemplateType \
                 payloadPath the payload path holding it)"
            ))
        })?;
        let key = match config.key_template_type.as_deref().map(str::trim) {
            None | Some("") | Some("stringTemplate") => {
                KeySource::Template(template(spec, "keyTemplate", key_text)?)
            }
            Some("payloadPath") => KeySource::Path(path(spec, "keyTemplate", key_text.trim())?),
            Some("diskPath") => {
                return Err(spec.error(
                    "keyTemplateType diskPath reads the key from a file on an Edge Agent's \
                     disk, which flowd does not do; use stringTemplate or payloadPath",
                ))
            }
            Some(other) => {
                return Err(spec.error(format!(
                    "keyTemplateType must be stringTemplate or payloadPath, not \"{other}\""
                )))
            }
        };
        let data = filled(config.data_template.as_deref())
            .ok_or_else(|| spec.error("dataTemplate is required"))?;
        Ok(Common {
            key,
            data: template(spec, "dataTemplate", data)?,
            data_encoding: Choice::compile(
                spec,
                "dataEncodingTemplate",
                config.data_encoding_template.as_deref(),
            )?,
            algorithm: Choice::compile(
                spec,
                "algorithmTemplate",
                config.algorithm_template.as_deref(),
            )?,
            padding: Choice::compile(spec, "paddingTemplate", config.padding_template.as_deref())?,
            dsa_encoding: Choice::compile(
                spec,
                "dsaEncodingTemplate",
                config.dsa_encoding_template.as_deref(),
            )?,
            signature_encoding: Choice::compile(
                spec,
                "signatureEncodingTemplate",
                config.signature_encoding_template.as_deref(),
            )?,
        })
    }

    /// Renders every template (their failures halt, before any failure of the action is
    /// reported), then reads the settings and the data.
    pub(crate) fn prepare(&self, payload: &Value) -> Result<Prepared, Failure> {
        let key = match &self.key {
            KeySource::Template(t) => Ok(render_required(t, "keyTemplate", payload)?),
            KeySource::Path(path) => match path.get(payload).as_deref() {
                Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
                _ => Err(format!(
                    "keyTemplate: no PEM key (a string) at payload path \"{}\"",
                    path.as_str()
                )),
            },
        };
        let data = render_required(&self.data, "dataTemplate", payload)?;
        let data_encoding = self.data_encoding.get("dataEncodingTemplate", payload);
        let digest = self.algorithm.get("algorithmTemplate", payload);
        let padding = self.padding.get("paddingTemplate", payload);
        let dsa_encoding = self.dsa_encoding.get("dsaEncodingTemplate", payload);
        let signature_encoding = self
            .signature_encoding
            .get("signatureEncodingTemplate", payload);
        halt_on_template(&data_encoding)?;
        halt_on_template(&digest)?;
        halt_on_template(&padding)?;
        halt_on_template(&dsa_encoding)?;
        halt_on_template(&signature_encoding)?;
        Ok(Prepared {
            key,
            data: decode_input(&data, data_encoding?, "dataTemplate")?,
            options: Options {
                digest: digest?,
                padding: padding?,
                dsa_encoding: dsa_encoding?,
            },
            signature_encoding: signature_encoding?,
        })
    }
}

fn halt_on_template<T>(result: &Result<T, NodeError>) -> Result<(), Failure> {
    match result {
        Err(e) if e.name == ErrorName::TemplateError => Err(Failure::Halt(e.clone())),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// PEM.

struct PemBlock {
    label: String,
    der: Vec<u8>,
    encrypted: bool,
}

/// Every `-----BEGIN X-----` … `-----END X-----` block, in order.
fn pem_blocks(text: &str) -> Vec<PemBlock> {
    let text = text.replace("\\n", "\n").replace(ESCAPED_EQUALS, "=");
    let mut blocks = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = after[..label_end].trim().to_owned();
        let body = &after[label_end + "-----".len()..];
        let end_marker = format!("-----END {label}-----");
        let Some(body_end) = body.find(&end_marker) else {
            break;
        };
        let inner = &body[..body_end];
        // Header lines (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: …`) hold a colon.
        let (headers, lines): (Vec<&str>, Vec<&str>) = inner.lines().partition(|l| l.contains(':'));
        let encrypted = headers.iter().any(|l| l.contains("ENCRYPTED"));
        let base64: String = lines.concat();
        blocks.push(PemBlock {
            encrypted: encrypted || label.starts_with("ENCRYPTED"),
            der: base64_decode(&base64),
            label,
        });
        rest = &body[body_end + end_marker.len()..];
    }
    blocks
}

const PRIVATE_LABELS: [&str; 4] = [
    "PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
];
const PUBLIC_LABELS: [&str; 3] = ["PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE"];

/// `=` as a `{{…}}` template writes it.
const ESCAPED_EQUALS: &str = "&#x3D;";

// ---------------------------------------------------------------------------------------------
// Keys.

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

fn unsupported_key(algorithm: ObjectIdentifier, parameter: Option<ObjectIdentifier>) -> String {
    if algorithm == OID_EC {
        match parameter {
            Some(curve) => {
                format!("unsupported EC curve (OID {curve}); P-256 and P-384 keys are supported")
            }
            None => "the EC key names no curve".to_owned(),
        }
    } else {
        format!(
            "unsupported key type (OID {algorithm}); RSA, EC (P-256, P-384) and Ed25519 keys \
             are supported"
        )
    }
}

/// A private key that signs.
pub(crate) enum PrivateKey {
    Rsa(Box<RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

/// A public key that verifies.
pub(crate) enum PublicKey {
    Rsa(Box<RsaPublicKey>),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(Box<ed25519_dalek::VerifyingKey>),
}

const BAD_PRIVATE: &str = "keyTemplate is not a PEM private key (RSA as PKCS#1 or PKCS#8, EC \
                           P-256/P-384 as SEC1 or PKCS#8, Ed25519 as PKCS#8)";
const BAD_PUBLIC: &str = "keyTemplate is not a PEM public key, certificate or private key";

fn private_from_block(block: &PemBlock) -> Result<PrivateKey, String> {
    if block.encrypted {
        return Err("encrypted private keys are not supported".to_owned());
    }
    let der = block.der.as_slice();
    let broken = |kind: &str| format!("keyTemplate holds a {kind} that cannot be read");
    match block.label.as_str() {
        "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_der(der)
            .map(|k| PrivateKey::Rsa(Box::new(k)))
            .map_err(|_| broken("PKCS#1 RSA private key")),
        "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(der)
            .map(|k| PrivateKey::P256(k.into()))
            .or_else(|_| p384::SecretKey::from_sec1_der(der).map(|k| PrivateKey::P384(k.into())))
            .map_err(|_| {
                "keyTemplate holds an SEC1 EC private key that cannot be read, or one not on \
                 P-256 or P-384"
                    .to_owned()
            }),
        _ => {
            let info = PrivateKeyInfo::try_from(der).map_err(|_| broken("PKCS#8 private key"))?;
            let algorithm = info.algorithm.oid;
            let parameter = info.algorithm.parameters_oid().ok();
            let key = if algorithm == OID_RSA {
                RsaPrivateKey::from_pkcs8_der(der).map(|k| PrivateKey::Rsa(Box::new(k)))
            } else if algorithm == OID_EC && parameter == Some(OID_P256) {
                p256::ecdsa::SigningKey::from_pkcs8_der(der).map(PrivateKey::P256)
            } else if algorithm == OID_EC && parameter == Some(OID_P384) {
                p384::ecdsa::SigningKey::from_pkcs8_der(der).map(PrivateKey::P384)
            } else if algorithm == OID_ED25519 {
                ed25519_dalek::SigningKey::from_pkcs8_der(der)
                    .map(|k| PrivateKey::Ed25519(Box::new(k)))
            } else {
                return Err(unsupported_key(algorithm, parameter));
            };
            key.map_err(|_| broken("PKCS#8 private key"))
        }
    }
}

/// The `subjectPublicKeyInfo` (DER) of an X.509 certificate.
fn certificate_spki(der: &[u8]) -> Option<Vec<u8>> {
    let certificate = AnyRef::from_der(der).ok()?;
    if certificate.tag() != Tag::Sequence {
        return None;
    }
    let mut outer = SliceReader::new(certificate.value()).ok()?;
    let tbs = AnyRef::decode(&mut outer).ok()?;
    if tbs.tag() != Tag::Sequence {
        return None;
    }
    let mut fields = SliceReader::new(tbs.value()).ok()?;
    let version = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber::N0,
    };
    if fields.peek_tag().ok()? == version {
        AnyRef::decode(&mut fields).ok()?;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        AnyRef::decode(&mut fields).ok()?;
    }
    AnyRef::decode(&mut fields).ok()?.to_der().ok()
}

fn public_from_spki(der: &[u8]) -> Result<PublicKey, String> {
    let broken = || "keyTemplate holds a public key that cannot be read".to_owned();
    let info = SubjectPublicKeyInfoRef::try_from(der).map_err(|_| broken())?;
    let algorithm = info.algorithm.oid;
    let parameter = info.algorithm.parameters_oid().ok();
    if algorithm == OID_RSA {
        RsaPublicKey::from_public_key_der(der)
            .map(|k| PublicKey::Rsa(Box::new(k)))
            .map_err(|_| broken())
    } else if algorithm == OID_EC && parameter == Some(OID_P256) {
        p256::ecdsa::VerifyingKey::from_public_key_der(der)
            .map(PublicKey::P256)
            .map_err(|_| broken())
    } else if algorithm == OID_EC && parameter == Some(OID_P384) {
        p384::ecdsa::VerifyingKey::from_public_key_der(der)
            .map(PublicKey::P384)
            .map_err(|_| broken())
    } else if algorithm == OID_ED25519 {
        ed25519_dalek::VerifyingKey::from_public_key_der(der)
            .map(|k| PublicKey::Ed25519(Box::new(k)))
            .map_err(|_| broken())
    } else {
        Err(unsupported_key(algorithm, parameter))
    }
}

fn public_from_block(block: &PemBlock) -> Result<PublicKey, String> {
    match block.label.as_str() {
        "PUBLIC KEY" => public_from_spki(&block.der),
        "RSA PUBLIC KEY" => RsaPublicKey::from_pkcs1_der(&block.der)
            .map(|k| PublicKey::Rsa(Box::new(k)))
            .map_err(|_| "keyTemplate holds a PKCS#1 RSA public key that cannot be read".into()),
        "CERTIFICATE" => public_from_spki(
            &certificate_spki(&block.der)
                .ok_or("keyTemplate holds a certificate that cannot be read")?,
        ),
        _ => private_from_block(block).map(|key| key.public()),
    }
}

impl PrivateKey {
    pub(crate) fn from_pem(text: &str) -> Result<PrivateKey, String> {
        let blocks = pem_blocks(text);
        if let Some(block) = blocks
            .iter()
            .find(|b| PRIVATE_LABELS.contains(&b.label.as_str()))
        {
            return private_from_block(block);
        }
        if blocks
            .iter()
            .any(|b| PUBLIC_LABELS.contains(&b.label.as_str()))
        {
            return Err(
                "keyTemplate holds a public key or certificate; signing needs the private key"
                    .to_owned(),
            );
        }
        Err(BAD_PRIVATE.to_owned())
    }

    pub(crate) fn public(&self) -> PublicKey {
        match self {
            PrivateKey::Rsa(key) => PublicKey::Rsa(Box::new(key.to_public_key())),
            PrivateKey::P256(key) => PublicKey::P256(*key.verifying_key()),
            PrivateKey::P384(key) => PublicKey::P384(*key.verifying_key()),
            PrivateKey::Ed25519(key) => PublicKey::Ed25519(Box::new(key.verifying_key())),
        }
    }

    /// The signature of `data`.
    pub(crate) fn sign(&self, data: &[u8], options: Options) -> Result<Vec<u8>, String> {
        let digest = options.digest;
        match self {
            PrivateKey::Rsa(key) => {
                let hashed = digest.hash(data);
                let result = match options.padding {
                    Padding::Pkcs1 => key.sign_with_rng(&mut OsRng, digest.pkcs1(), &hashed),
                    Padding::Pss => {
                        let salt = max_pss_salt(key.n().bits(), hashed.len())
                            .ok_or_else(|| too_small(digest, options.padding))?;
                        key.sign_with_rng(&mut OsRng, digest.pss_blinded(salt), &hashed)
                    }
                };
                result.map_err(|e| match e {
                    rsa::Error::MessageTooLong => too_small(digest, options.padding),
                    e => format!("signing failed: {e}"),
                })
            }
            PrivateKey::P256(key) => ec_p256::sign(key, &digest.hash(data), options.dsa_encoding),
            PrivateKey::P384(key) => ec_p384::sign(key, &digest.hash(data), options.dsa_encoding),
            PrivateKey::Ed25519(key) => Ok(key.sign(data).to_bytes().to_vec()),
        }
    }
}

fn too_small(digest: SignDigest, padding: Padding) -> String {
    let padding = match padding {
        Padding::Pkcs1 => "RSA_PKCS1_PADDING",
        Padding::Pss => "RSA_PKCS1_PSS_PADDING",
    };
    format!(
        "the RSA key is too small for {} with {padding}",
        digest.name()
    )
}

/// The largest PSS salt a key of `modulus_bits` allows with a digest of `hash_len` bytes
/// (RFC 8017 §9.1.1: emLen − hLen − 2, with emLen = ⌈(modBits − 1) / 8⌉).
pub(crate) fn max_pss_salt(modulus_bits: usize, hash_len: usize) -> Option<usize> {
    modulus_bits
        .checked_sub(1)?
        .div_ceil(8)
        .checked_sub(hash_len + 2)
}

/// MGF1 (RFC 8017 §B.2.1) over `digest`.
fn mgf1(digest: SignDigest, seed: &[u8], len: usize) -> Vec<u8> {
    let mut mask = Vec::with_capacity(len);
    let mut counter: u32 = 0;
    while mask.len() < len {
        let mut block = seed.to_vec();
        block.extend_from_slice(&counter.to_be_bytes());
        mask.extend(digest.hash(&block));
        counter = counter.wrapping_add(1);
    }
    mask.truncate(len);
    mask
}

/// The salt length a PSS signature was made with (RFC 8017 §9.1.2 steps 1–10, which OpenSSL's
/// `RSA_PSS_SALTLEN_AUTO` does too); `None` when it is no PSS encoding for this key and digest.
pub(crate) fn pss_salt_len(
    key: &RsaPublicKey,
    digest: SignDigest,
    signature: &[u8],
) -> Option<usize> {
    let size = key.size();
    if signature.len() != size {
        return None;
    }
    let s = BigUint::from_bytes_be(signature);
    if &s >= key.n() {
        return None;
    }
    let m = s.modpow(key.e(), key.n()).to_bytes_be();
    let mut em = vec![0u8; size.checked_sub(m.len())?];
    em.extend_from_slice(&m);
    let em_bits = key.n().bits().checked_sub(1)?;
    let em_len = em_bits.div_ceil(8);
    let em = em.get(size.checked_sub(em_len)?..)?;
    let h_len = digest.hash(b"").len();
    if em_len < h_len + 2 || em.last() != Some(&0xbc) {
        return None;
    }
    let (masked, rest) = em.split_at(em_len - h_len - 1);
    let h = rest.get(..h_len)?;
    let mut db: Vec<u8> = masked
        .iter()
        .zip(mgf1(digest, h, masked.len()))
        .map(|(a, b)| a ^ b)
        .collect();
    let first = db.first_mut()?;
    *first &= 0xff_u8 >> (8 * em_len - em_bits);
    let start = db.iter().position(|b| *b != 0)?;
    (db[start] == 1).then(|| db.len() - start - 1)
}

impl PublicKey {
    pub(crate) fn from_pem(text: &str) -> Result<PublicKey, String> {
        let blocks = pem_blocks(text);
        match blocks.iter().find(|b| {
            PUBLIC_LABELS.contains(&b.label.as_str()) || PRIVATE_LABELS.contains(&b.label.as_str())
        }) {
            Some(block) => public_from_block(block),
            None => Err(BAD_PUBLIC.to_owned()),
        }
    }

    /// Whether `signature` is one of `data` by this key.
    pub(crate) fn verify(&self, data: &[u8], signature: &[u8], options: Options) -> bool {
        let digest = options.digest;
        match self {
            PublicKey::Rsa(key) => {
                let hashed = digest.hash(data);
                match options.padding {
                    Padding::Pkcs1 => key.verify(digest.pkcs1(), &hashed, signature).is_ok(),
                    Padding::Pss => pss_salt_len(key, digest, signature).is_some_and(|salt| {
                        key.verify(digest.pss(salt), &hashed, signature).is_ok()
                    }),
                }
            }
            PublicKey::P256(key) => {
                ec_p256::verify(key, &digest.hash(data), signature, options.dsa_encoding)
            }
            PublicKey::P384(key) => {
                ec_p384::verify(key, &digest.hash(data), signature, options.dsa_encoding)
            }
            PublicKey::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| key.verify(data, &s).is_ok()),
        }
    }
}

macro_rules! ecdsa_curve {
    ($module:ident, $curve:ident) => {
        mod $module {
            use super::DsaEncoding;
            use $curve::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
            use $curve::ecdsa::{Signature, SigningKey, VerifyingKey};

            /// The digest as a field element's bytes: left-padded when shorter, its leftmost
            /// bytes when longer (the curves' orders are whole bytes long).
            fn prehash(digest: &[u8]) -> $curve::FieldBytes {
                let mut field = $curve::FieldBytes::default();
                let len = field.len();
                if digest.len() >= len {
                    field.copy_from_slice(&digest[..len]);
                } else {
                    field[len - digest.len()..].copy_from_slice(digest);
                }
                field
            }

            pub(super) fn sign(
                key: &SigningKey,
                digest: &[u8],
                encoding: DsaEncoding,
            ) -> Result<Vec<u8>, String> {
                let signature: Signature = key
                    .sign_prehash(&prehash(digest))
                    .map_err(|e| format!("signing failed: {e}"))?;
                Ok(match encoding {
                    DsaEncoding::Der => signature.to_der().as_bytes().to_vec(),
                    DsaEncoding::IeeeP1363 => signature.to_bytes().to_vec(),
                })
            }

            pub(super) fn verify(
                key: &VerifyingKey,
                digest: &[u8],
                signature: &[u8],
                encoding: DsaEncoding,
            ) -> bool {
                let signature = match encoding {
                    DsaEncoding::Der => Signature::from_der(signature),
                    DsaEncoding::IeeeP1363 => Signature::from_slice(signature),
                };
                signature.is_ok_and(|s| key.verify_prehash(&prehash(digest), &s).is_ok())
            }
        }
    };
}

ecdsa_curve!(ec_p256, p256);
ecdsa_curve!(ec_p384, p384);

/// Fixed keys and signatures made with the `openssl` CLI (3.0), over the message
/// `hello flowd`. The RSA, P-256 and P-384 (PKCS#8) keys are the JWT nodes' test keys.
#[cfg(test)]
pub(crate) mod test_keys {
    pub use crate::nodes::logic::jwt_create::test_keys::{
        P256_PRIVATE_PKCS8, P256_PRIVATE_SEC1, P256_PUBLIC, P384_PRIVATE_PKCS8, P384_PUBLIC,
        RSA_PRIVATE_PKCS1, RSA_PRIVATE_PKCS8, RSA_PUBLIC,
    };

    pub const MESSAGE: &str = "hello flowd";

    /// `openssl rsa -in rsa.pem -RSAPublicKey_out`
    pub const RSA_PUBLIC_PKCS1: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAwzz/4aTZ1Za0v6rmQaCAnH6SM2zJOirJQwYgVsasLuKwA770mKe4
vwe1qN43iHrMHe+skzTbC/l5TBIfnfEf+KXjS0ATXxVOdgJfC39J4cOHZMfFKrOl
Ng2kj7QPSPnd7bxx4j3Ts7fjKCJcSHFVAxRi7W1mTCQNQ9lO451w89nilCWIZ5Qn
S+2XGqO03/Ihx2GZFy3MDwmd4ggZhr4yHRfQrBNePBvecqxd+WVAqiXlNkqWUK98
PhcHYVMV/zGB0QgPBRg1Uz/UkbXmUrTrTZV93vtBe+tiqangxXHFuOmpSOIa1GmQ
g0JeAYQMFd5bYRwpFQimzqkBi/i1lxAMOQIDAQAB
-----END RSA PUBLIC KEY-----
";

    /// `openssl req -x509 -new -key rsa.pem -subj /CN=flowd-test -days 36500`
    pub const RSA_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIDDTCCAfWgAwIBAgIUZfJyrQ8NNDHkMpuNhO6JnixnX6UwDQYJKoZIhvcNAQEL
BQAwFTETMBEGA1UEAwwKZmxvd2QtdGVzdDAgFw0yNjExMjgwMDE3MzBaGA8yMTI2
MTEwNDAwMTczMFowFTETMBEGA1UEAwwKZmxvd2QtdGVzdDCCASIwDQYJKoZIhvcN
AQEBBQADggEPADCCAQoCggEBAMM8/+Gk2dWWtL+q5kGggJx+kjNsyToqyUMGIFbG
rC7isAO+9JinuL8HtajeN4h6zB3vrJM02wv5eUwSH53xH/il40tAE18VTnYCXwt/
SeHDh2THxSqzpTYNpI+0D0j53e28ceI907O34ygiXEhxVQMUYu1tZkwkDUPZTuOd
cPPZ4pQliGeUJ0vtlxqjtN/yIcdhmRctzA8JneIIGYa+Mh0X0KwTXjwb3nKsXfll
QKol5TZKllCvfD4XB2FTFf8xgdEIDwUYNVM/1JG15lK0602Vfd77QXvrYqmp4MVx
xbjpqUjiGtRpkINCXgGEDBXeW2EcKRUIps6pAYv4tZcQDDkCAwEAAaNTMFEwHQYD
VR0OBBYEFETTqlQSoap5zeAzxGdybIj7SquKMB8GA1UdIwQYMBaAFETTqlQSoap5
zeAzxGdybIj7SquKMA8GA1UdEwEB/wQFMAMBAf8wDQYJKoZIhvcNAQELBQADggEB
AICuN+RCSIgkm3gx2jjFYC71WClmF9Q/j6ntvQb5f+nCFZ9jd45HqHtRxWoMk4c0
LqOkImX49F6Ngom5TdT9sfXGJlUhY6Y+t5Q45NEnZdiNeq/8N0pBi6moScfOB9qT
DiOvPT25wRdJbOwImnXBDLViOmk2a8yYwX4HkiIKDKdFB+Srt5z9b28DtBdv4lW7
gfi9Vc+lqkv7gRxFaagdmSbDYGg9XMvRM8MLYpoewPSXupslpHP+lJWVEEbaIO94
oznDNSAgmFqkBCN/DXjJKaZWfSEhis6fVVzuWFHmAmtXrIST6G2U/GlCTvTRmBeJ
Vc6ugeckq4LEkU6yp7mylPw=
-----END CERTIFICATE-----
";

    /// `openssl dgst -sha256 -sign rsa.pem` (PKCS#1 v1.5 is deterministic).
    pub const RSA_PKCS1_SHA256: &str = "shCpk5+Md+DzMHOLeork/rjJL7mr8T8dvVEOB59cLadl9ClwzqVBanZe96V+iDfegE3Ek6Hx7efl08mdo/Eicz/UNkIi1Q46/nhM+NWGd5p4IHsZf4I2OWxQbfkEnfFD6FYICocHKaTXjlJ5Ay418nUZB1WmpeTE20GiENUYbMBLWpV9VyhlNiX9mJVS7tbNzBV+k58ZbENKKa1OvvDVggWXGkiRKhJQWulDZ8MTrXyoCP34EVPuLZBmpsxSLUw9XZd7iKWiqnSy8FOjkbadBW1qSI0OdL2jquJKI4mpfc1Z5P6mlC7bDReT93xU3QZHfDnJbyF5v+IoQlR438wHqw==";
    /// `openssl dgst -md5 -sign rsa.pem`
    pub const RSA_PKCS1_MD5: &str = "FOCvnzhqjpbMSrX7O93WnXBbb0C7vC5BZ3vvlYKyqfxuX9gkcdF9T/A0t6IPl+GALMFOB+95PpWRvmPlf7vSWJfCbr4kzU9R3kPf/n86zNQCcL9/K/hjXC81S8+9g4ODr6suwd5/gThj5p1Sqezd8gkG5yMuz/SWGAcnk+f69s//TO5K7h1aEScHBdQHCpA0rNfbKzQwoiVwSBy2NFHHuHheZWvoecrS/WII+KmK0vGemPCIUhUZtNvtHJI5XHvvJ9B9UjYGPHb99EVHZMGLJ35f0Nejd1/mIivkkevZLTjONKeUCem0ziA0FBhTpNUZ9wJlCBjg1YDbRj6TGmLkKQ==";
    /// `openssl dgst -sha1 -sign rsa.pem`
    pub const RSA_PKCS1_SHA1: &str = "ZXrOoNXmEhUJl8t157lOYhSy/bjwfPT/ECNfxzB3FAtP4hTgDQVJ0ZGhohKN8PmbQlkCMR0C/PTYWgPU2MSfdxiSP2/SBjcOn8nurL+T09cbdy1gBU13OWhBxfX7q83/uCoxH04ezD2Aob2Xp7USV2CVByLESfo75EdTs3dLXpadvg2NEZ2yvD1gpOjKZeMipnvynybdBbECPh/jNE2tkQIbKoax986xjrk/q5UA5OPoano5xLhF6JJaCbbkKvcYvb1qjZiQ04oNRNIQ+XaGbOyO+0Idgy26zXdgqlxR0ZKvxdhqP1BoW/u14FCJ4NgZSFS2NcEXq1jrfFX4XiwHOg==";
    /// `openssl dgst -sha256 -sign rsa.pem -sigopt rsa_padding_mode:pss -sigopt
    /// rsa_pss_saltlen:max`
    pub const RSA_PSS_SHA256_MAX: &str = "bCTA7sqOBNdpCk8wvvdzVH5xU65gHpvRyCMnNVxSTR5Hz4+1AMkFUeb4DlgeUW3ElNAUVzomwDKjpZr6eypLRN7qj95Q8oem2Dnh4P46x1ZSVTlh/m1HTP0Z7kOt7cy13DRHNv5EGtVgRx9av4jeyzDm2eRIgqAU5qKIeO6JrzYfBZvwbQuizdC4hKKj8yMr8duZCxz4UTNRk0ztIyJIccbv3kQZ6SoWASLwOS/puyydiHZTCbVEXVqX4nDr9fkSnP4gawbZ1x8Gt8hc119lwUh830mOTjEKAnIAyXqEKcLCW85/rZoWUugaq9cBpG/w9DypoSEepqycKU2Lnid7gQ==";
    /// The same with `-sha384` and `rsa_pss_saltlen:digest`.
    pub const RSA_PSS_SHA384_DIGEST: &str = "MjYtbFGPaPhc6r21ze/HZlpivNXn6POf5MqCr1BfplM9Kme9XJDYX5RVqNsOjpto6ScsH/de5s1h4AI/DKkemfVXxNN2CqGzGX0VqYwcFw9AfWAFdVkxT522hdozsSlklyz84muq+aI+NXOora6UDSLjCHbPacoPaknQFG/1tCBTK59Nx1mVw+75QAbl/z6TPz+DfO9gRgySfVfd/pGC9Z+AiQrmiyj47IIWXVObQR/dAcraI3srt749oZiek4OgDUhZtxY/2JM3+rEMwniLh8bIdTuxag4TYXa4xgNnPoLtjSUSnWA553mDhoKPmM9dlxpfHdcs03bBUH8pt/tHmA==";

    /// `openssl genrsa 1025`: a modulus one bit past a whole byte, where the PSS encoding is
    /// a byte shorter than the signature.
    pub const RSA1025_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAZDEuXmv0UAL2j9b
RRHGWjCrd4MERvjW7IC32/oX3nlHLy8bShGXaJ+qNcCbDUYHHYY1HBnzLYa4/Uxk
bT1vJZbZ9f22oN2i05Sun+tnAQzufBkDtLqSshwLnfsXOITvO1ZiP4B2iT8kUpNj
RF100YwZbtMiCEmYDXqT210QsyivAgMBAAECgYEBJsGZjKdEJm/RN/Hfzd/t64fh
IWpe7JveXBld4AX4KYiyaloO0vtiBrSATkV7sLqA+3lKTses/z5Fhg8CzUFXCSD7
IGcLbf1zfquCUflQFoS5huJYbW8NvSyaZI5nVskWZ/Gi3D+1Jbauv9Rg1W5jr1hH
ch5rV+xomwz5fSQ8rCkCQQH3OGGckYPdVxOx/KW+LoN1fEnu+MJtmrkO0BblpqEt
Xg8i1vhsPUjvOaUiSmUKAdsHFmTMzG/A/fv5LTV5m8ozAkEAy+FfZSTOq1JCPzUC
4TW/xjYw9xH1A5v7cikU/jesqGF3R+8E/yF1y/Te9mZdkNlGOSj2sM9+AIFniPm9
05ijlQJBAVYM4fStyKc0IDQUmoiaT0sVj5+7QVWFHRMfiODTEa2nyLwSyUuxoJjT
Yxba4LEbr8iyhRPcRn41ZgfqnfWqWpcCQCZYXv7A63XhZMBKkh4VY9o9uvvdDr39
Ck+wVlhx1DFfE3YeCEyL2IHhrkWdfx+NHd4GTE941vP1Yqmqfv9bB/kCQF0jOy17
L6erMbGUHakH8h/0kS+AbfTfRMUqaUNgdynWcKnZNFJifhQDMp54p//5CgzCCFwD
sFksJPRJTJhFV/4=
-----END PRIVATE KEY-----
";
    pub const RSA1025_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQGQxLl5r9FAC9o/W0URxlowq3eD
BEb41uyAt9v6F955Ry8vG0oRl2ifqjXAmw1GBx2GNRwZ8y2GuP1MZG09byWW2fX9
tqDdotOUrp/rZwEM7nwZA7S6krIcC537FziE7ztWYj+Adok/JFKTY0RddNGMGW7T
IghJmA16k9tdELMorwIDAQAB
-----END PUBLIC KEY-----
";
    /// `openssl dgst -sha256 -sign rsa1025.pem -sigopt rsa_padding_mode:pss -sigopt
    /// rsa_pss_saltlen:max`
    pub const RSA1025_PSS_SHA256_MAX: &str = "AOi9ka1l+cmu6zg2Nt/zLfq9XS8gMTCbS37aa4ZRSCgPj3MScW6lnvJtuBVZZvwaWETqdBaVzULmpuLFyGZ1O1JhJrPvJHWTfWdadzxo3Gb416yDa1/yE+EBiW4a69RFlzIAti9hDhpWaXFHeZcpUxU6pV60HQ6g0TJSK8mBlb6h";

    /// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:512`: too small for SHA512
    /// with PKCS#1 v1.5.
    pub const RSA512_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6AgEAAkEAtaPrMe0cwlVq67wT
I6vm04zYnb7DIoSMvFMOMB74L8NUqXJP6HkCmtDBTfQzvy/vxxXTAOMtPuD2RobP
jd+d3wIDAQABAkEAtIryuxRY0py+gwPU7k7uR3Ym1VyIbuXbUVEouBIAVM+eEQuG
OUCs3jjmsbi0A8mL3heC/ms+DMHYCIVjaY6XCQIhAPFTX4I2/6HW4RCjQSEqjf24
X8VUy7wHBwqSrMmpfEkDAiEAwK9yHHtD1gf554Ky9Kn7U1AinxqOpq9ZaJ87yc67
6vUCIC6w+uGu0nb1pEYb0BYiraZRbfY4GdMfaPVau6Oo7ysRAiAVdPQeG9PoB6da
koFfIXatRmU0ln6ALVKlheXgiTb/6QIgKOACHRoDlzlaNg8rs5j1bBle2qGVTdJm
Fa9tA4kYJjI=
-----END PRIVATE KEY-----
";

    /// `openssl dgst -sha256 -sign p256-sec1.pem` (DER).
    pub const P256_SHA256_DER: &str = "MEUCIQCcWvK3VoORsDmlxJZ+rlZq9YafDEGgRbNJtG6ux1w1ZgIgKLqmwmj1X5c8Qt3bc4ZsdM8B6I5wBxaF87DtSGCpm3g=";

    /// `openssl ecparam -name secp384r1 -genkey`: an `EC PARAMETERS` block, then SEC1.
    pub const P384_SEC1_WITH_PARAMETERS: &str = "-----BEGIN EC PARAMETERS-----
BgUrgQQAIg==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MIGkAgEBBDB19gIRnyKIMpzq/cDEQK+Zgl8XKkbnmngd8Uwjg5hHKXSdk5/9l4Ch
b5LXLqsxeDWgBwYFK4EEACKhZANiAATQhnIWLHytIvuOOUP44VKQUcy2jl68VMeP
lAmu9h5U9HUIH1N9pJusilsz5aVZLBxijzBwsbY3o+jtkeK2e46OVbEAZWF7Bcc0
cFUYbdyUTIOHO6qOgAOD5gPkYw0EnAA=
-----END EC PRIVATE KEY-----
";
    pub const P384_SEC1_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE0IZyFix8rSL7jjlD+OFSkFHMto5evFTH
j5QJrvYeVPR1CB9TfaSbrIpbM+WlWSwcYo8wcLG2N6Po7ZHitnuOjlWxAGVhewXH
NHBVGG3clEyDhzuqjoADg+YD5GMNBJwA
-----END PUBLIC KEY-----
";
    /// `openssl dgst -sha1 -sign p384-sec1.pem`: a digest shorter than half the order.
    pub const P384_SHA1_DER: &str = "MGUCMQDIyMYpkwcPYaTcv2XBstR0K4NfGaETuHPdFrSzDdKd+hxMpIjI1obNrWv4DgnMOnACMEoNYogFFhyioMyICFxU7aHMLLYrrBtSw8TsbPea2yQ4dBiQvks8xkhg8x2LktdLPQ==";

    /// `openssl genpkey -algorithm ed25519`
    pub const ED25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIH9IUTp1//Jl0U53SLUJGSKOpolWNiso3GZyjX5DRdud
-----END PRIVATE KEY-----
";
    pub const ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAjpEy71nTRCS/YCA7jaYNzCU8kBWpfKRpYLbT/qOXBDM=
-----END PUBLIC KEY-----
";
    /// `openssl pkeyutl -sign -inkey ed25519.pem -rawin` (Ed25519 is deterministic).
    pub const ED25519_SIGNATURE: &str =
        "TCXUjm0RyzpPa3comv2ndOyzAIjWbWOcOJg2thy2y8BnHs40phOPGlciFpLC96JgBWSU1ZIfIfYrOkkPrANDAA==";
}

#[cfg(test)]
mod tests {
    use super::test_keys::*;
    use super::*;
    use crate::template::encode::base64_decode;

    fn options(digest: SignDigest, padding: Padding, dsa_encoding: DsaEncoding) -> Options {
        Options {
            digest,
            padding,
            dsa_encoding,
        }
    }

    #[test]
    fn pem_blocks_are_found_in_order() {
        let blocks = pem_blocks(P384_SEC1_WITH_PARAMETERS);
        let labels: Vec<&str> = blocks.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["EC PARAMETERS", "EC PRIVATE KEY"]);
        // Line breaks written as `\n` in one line.
        let one_line = ED25519_PRIVATE.replace('\n', "\\n");
        assert!(PrivateKey::from_pem(&one_line).is_ok());
        assert!(pem_blocks("-----BEGIN X-----\nAAAA").is_empty());
        assert!(pem_blocks("no pem").is_empty());
    }

    #[test]
    fn every_key_form_is_read() {
        for private in [
            RSA_PRIVATE_PKCS1,
            RSA_PRIVATE_PKCS8,
            P256_PRIVATE_SEC1,
            P256_PRIVATE_PKCS8,
            P384_PRIVATE_PKCS8,
            P384_SEC1_WITH_PARAMETERS,
            ED25519_PRIVATE,
        ] {
            assert!(PrivateKey::from_pem(private).is_ok(), "{private}");
            assert!(PublicKey::from_pem(private).is_ok(), "{private}");
        }
        for public in [
            RSA_PUBLIC,
            RSA_PUBLIC_PKCS1,
            RSA_CERT,
            P256_PUBLIC,
            P384_PUBLIC,
            ED25519_PUBLIC,
        ] {
            assert!(PublicKey::from_pem(public).is_ok(), "{public}");
            let e = PrivateKey::from_pem(public).err().unwrap();
            assert!(e.contains("needs the private key"), "{e}");
        }
        let p521 = crate::nodes::logic::jwt_create::test_keys::P521_PUBLIC;
        let e = PublicKey::from_pem(p521).err().unwrap();
        assert!(e.contains("unsupported EC curve"), "{e}");
        let e = PrivateKey::from_pem(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----",
        )
        .err()
        .unwrap();
        assert!(e.contains("encrypted"), "{e}");
        // As a `{{…}}` template writes it.
        let escaped = RSA_PRIVATE_PKCS8.replace('=', "&#x3D;");
        assert!(PrivateKey::from_pem(&escaped).is_ok());
        assert_eq!(
            SignatureEncoding(OutputEncoding::Base64).decode("AQ&#x3D;&#x3D;"),
            Some(vec![1])
        );
    }

    #[test]
    fn the_certificate_carries_the_rsa_public_key() {
        let from_cert = match PublicKey::from_pem(RSA_CERT).unwrap() {
            PublicKey::Rsa(key) => key,
            _ => panic!("not RSA"),
        };
        let from_spki = match PublicKey::from_pem(RSA_PUBLIC).unwrap() {
            PublicKey::Rsa(key) => key,
            _ => panic!("not RSA"),
        };
        assert_eq!(from_cert, from_spki);
    }

    #[test]
    fn pss_salts() {
        assert_eq!(max_pss_salt(2048, 32), Some(222));
        assert_eq!(max_pss_salt(1025, 32), Some(94));
        assert_eq!(max_pss_salt(512, 64), None);
        let key = match PublicKey::from_pem(RSA_PUBLIC).unwrap() {
            PublicKey::Rsa(key) => key,
            _ => panic!("not RSA"),
        };
        let max = base64_decode(RSA_PSS_SHA256_MAX);
        assert_eq!(pss_salt_len(&key, SignDigest::Sha256, &max), Some(222));
        let digest = base64_decode(RSA_PSS_SHA384_DIGEST);
        assert_eq!(pss_salt_len(&key, SignDigest::Sha384, &digest), Some(48));
        assert_eq!(pss_salt_len(&key, SignDigest::Sha256, &digest), None);
        assert_eq!(pss_salt_len(&key, SignDigest::Sha256, &max[1..]), None);
        // Our own PSS signatures use the largest salt.
        let private = PrivateKey::from_pem(RSA_PRIVATE_PKCS1).unwrap();
        let o = options(SignDigest::Sha256, Padding::Pss, DsaEncoding::Der);
        let ours = private.sign(MESSAGE.as_bytes(), o).unwrap();
        assert_eq!(pss_salt_len(&key, SignDigest::Sha256, &ours), Some(222));
        let small = PrivateKey::from_pem(RSA1025_PRIVATE).unwrap();
        let small_public = match small.public() {
            PublicKey::Rsa(key) => key,
            _ => panic!("not RSA"),
        };
        let ours = small.sign(MESSAGE.as_bytes(), o).unwrap();
        assert_eq!(ours.len(), 129);
        assert_eq!(
            pss_salt_len(&small_public, SignDigest::Sha256, &ours),
            Some(94)
        );
        let theirs = base64_decode(RSA1025_PSS_SHA256_MAX);
        assert_eq!(
            pss_salt_len(&small_public, SignDigest::Sha256, &theirs),
            Some(94)
        );
        assert!(PublicKey::from_pem(RSA1025_PUBLIC).unwrap().verify(
            MESSAGE.as_bytes(),
            &theirs,
            o
        ));
        // SHA512 with the largest salt (62 bytes) still fits 1025 bits.
        let o = options(SignDigest::Sha512, Padding::Pss, DsaEncoding::Der);
        assert!(small.sign(MESSAGE.as_bytes(), o).is_ok());
    }

    #[test]
    fn ecdsa_prehash_pads_and_truncates() {
        let key = PrivateKey::from_pem(P256_PRIVATE_SEC1).unwrap();
        let public = key.public();
        for digest in [
            SignDigest::Md5,
            SignDigest::Sha1,
            SignDigest::Sha384,
            SignDigest::Sha512,
        ] {
            let o = options(digest, Padding::Pkcs1, DsaEncoding::IeeeP1363);
            let signature = key.sign(MESSAGE.as_bytes(), o).unwrap();
            assert_eq!(signature.len(), 64);
            assert!(
                public.verify(MESSAGE.as_bytes(), &signature, o),
                "{digest:?}"
            );
            assert!(!public.verify(b"other", &signature, o));
        }
    }
}
