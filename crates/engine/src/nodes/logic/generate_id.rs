//! `GenerateIdNode`: writes a new identifier to `destinationPath`. One port.
//!
//! `idTypeTemplate` (default `uuidv4`) renders, is trimmed and lower-cased, and picks the kind:
//! * `uuidv1` — time and node based (the node id is random, chosen once per process, with the
//!   multicast bit set as RFC 4122 asks of a node id that is not a MAC address);
//! * `uuidv3` / `uuidv5` — name based: MD5 / SHA-1 of `namespaceTemplate` (a UUID) and
//!   `valueTemplate` (the name), so the same pair always gives the same id;
//! * `uuidv4` — random;
//! * `objectId` — a 24-hex, time-ordered MongoDB ObjectId (flowd's own id generator);
//! * `nanoid` — `numCharactersTemplate` (default 21) characters from `A-Za-z0-9_-`, from the
//!   system's secure random source.
//!
//! Decisions:
//! * A type template that renders blank is the default, `uuidv4`; any other type halts with
//!   `ValidationError`. A static type (no `{{`) is checked when the flow is saved.
//! * For `uuidv3`/`uuidv5` both the namespace and the value are required: missing from the
//!   config is a compile error (when the type is static), rendering empty halts with
//!   `TemplateError` (FLOW-JSON §7.4); a namespace that is not a UUID halts with
//!   `ValidationError`. UUIDs are written lower-case with hyphens.
//! * The nanoid length must be an integer from 1 to 256 (the newer revision; the older one
//!   said less than 256); blank means 21; anything else halts with `ValidationError`.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{path, render, render_required, template};
use crate::path::PayloadPath;
use crate::template::Template;
use crate::value::string_to_number;
use serde::Deserialize;
use serde_json::Value;
use std::sync::OnceLock;
use uuid::Uuid;

/// Longest nanoid.
pub const MAX_NANOID: usize = 256;
/// nanoid's default length.
const DEFAULT_NANOID: usize = 21;
/// nanoid's URL-safe alphabet.
const NANOID_ALPHABET: &[u8; 64] =
    b"useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    id_type_template: Option<String>,
    namespace_template: Option<String>,
    value_template: Option<String>,
    num_characters_template: Option<String>,
    destination_path: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    UuidV1,
    UuidV3,
    UuidV4,
    UuidV5,
    ObjectId,
    NanoId,
}

impl Kind {
    /// The kind a rendered type names (trimmed, lower-cased; blank is the default).
    fn parse(text: &str) -> Option<Kind> {
        Some(match text.trim().to_lowercase().as_str() {
            "" | "uuidv4" => Kind::UuidV4,
            "uuidv1" => Kind::UuidV1,
            "uuidv3" => Kind::UuidV3,
            "uuidv5" => Kind::UuidV5,
            "objectid" => Kind::ObjectId,
            "nanoid" => Kind::NanoId,
            _ => return None,
        })
    }
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::UuidV1 => "uuidv1",
            Kind::UuidV3 => "uuidv3",
            Kind::UuidV4 => "uuidv4",
            Kind::UuidV5 => "uuidv5",
            Kind::ObjectId => "objectId",
            Kind::NanoId => "nanoid",
        }
    }
}

const KINDS: &str = "uuidv1, uuidv3, uuidv4, uuidv5, objectId or nanoid";

enum IdType {
    Fixed(Kind),
    Template(Template),
}

pub struct GenerateId {
    kind: IdType,
    namespace: Option<Template>,
    value: Option<Template>,
    length: Option<Template>,
    destination: PayloadPath,
}

fn optional_template(
    spec: &NodeSpec<'_>,
    field: &str,
    text: Option<&str>,
) -> Result<Option<Template>, CompileError> {
    match text {
        Some(text) if !text.trim().is_empty() => template(spec, field, text).map(Some),
        _ => Ok(None),
    }
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let kind = match optional_template(spec, "idTypeTemplate", config.id_type_template.as_deref())?
    {
        None => IdType::Fixed(Kind::UuidV4),
        Some(t) => match t.static_text() {
            Some(text) => IdType::Fixed(Kind::parse(text).ok_or_else(|| {
                spec.error(format!("idTypeTemplate must be {KINDS}, not \"{text}\""))
            })?),
            None => IdType::Template(t),
        },
    };
    let namespace = optional_template(
        spec,
        "namespaceTemplate",
        config.namespace_template.as_deref(),
    )?;
    let value = optional_template(spec, "valueTemplate", config.value_template.as_deref())?;
    if let IdType::Fixed(k @ (Kind::UuidV3 | Kind::UuidV5)) = kind {
        if namespace.is_none() {
            return Err(spec.error(format!("namespaceTemplate is required for {}", k.name())));
        }
        if value.is_none() {
            return Err(spec.error(format!("valueTemplate is required for {}", k.name())));
        }
    }
    if let Some(ns) = namespace.as_ref().and_then(Template::static_text) {
        if Uuid::parse_str(ns.trim()).is_err() {
            return Err(spec.error(format!("namespaceTemplate \"{ns}\" is not a UUID")));
        }
    }
    let length = optional_template(
        spec,
        "numCharactersTemplate",
        config.num_characters_template.as_deref(),
    )?;
    if let Some(text) = length.as_ref().and_then(Template::static_text) {
        nanoid_length(text).map_err(|e| spec.error(e.message))?;
    }
    let destination = match config.destination_path.as_deref() {
        Some(text) if !text.trim().is_empty() => path(spec, "destinationPath", text)?,
        _ => return Err(spec.error("destinationPath is required")),
    };
    Ok(CompiledNodeType::new(
        GenerateId {
            kind,
            namespace,
            value,
            length,
            destination,
        },
        1,
    ))
}

fn invalid(message: String) -> NodeError {
    NodeError::new(ErrorName::ValidationError, message)
}

/// A nanoid length: an integer in 1–256; blank is the default.
fn nanoid_length(text: &str) -> Result<usize, NodeError> {
    if text.trim().is_empty() {
        return Ok(DEFAULT_NANOID);
    }
    let n = string_to_number(text);
    if n.fract() == 0.0 && (1.0..=MAX_NANOID as f64).contains(&n) {
        Ok(n as usize)
    } else {
        Err(invalid(format!(
            "numCharactersTemplate must be an integer from 1 to {MAX_NANOID}, not \"{text}\""
        )))
    }
}

/// A nanoid of `length` characters. 64 divides 256, so masking random bytes is unbiased.
pub(crate) fn nanoid(length: usize) -> String {
    let mut bytes = vec![0u8; length];
    rand::fill(bytes.as_mut_slice());
    bytes
        .iter()
        .map(|b| NANOID_ALPHABET[(b & 63) as usize] as char)
        .collect()
}

/// The per-process node id for version 1 UUIDs.
fn node_id() -> &'static [u8; 6] {
    static NODE: OnceLock<[u8; 6]> = OnceLock::new();
    NODE.get_or_init(|| {
        let mut node: [u8; 6] = rand::random();
        node[0] |= 0x01;
        node
    })
}

impl GenerateId {
    fn required(
        &self,
        t: Option<&Template>,
        field: &str,
        payload: &Value,
    ) -> Result<String, NodeError> {
        match t {
            Some(t) => render_required(t, field, payload),
            None => Err(NodeError::new(
                ErrorName::TemplateError,
                format!("{field} is required for name-based UUIDs"),
            )),
        }
    }

    fn name_based(&self, payload: &Value, v5: bool) -> Result<String, NodeError> {
        let ns = self.required(self.namespace.as_ref(), "namespaceTemplate", payload)?;
        let namespace = Uuid::parse_str(ns.trim())
            .map_err(|_| invalid(format!("namespaceTemplate \"{ns}\" is not a UUID")))?;
        let name = self.required(self.value.as_ref(), "valueTemplate", payload)?;
        let id = if v5 {
            Uuid::new_v5(&namespace, name.as_bytes())
        } else {
            Uuid::new_v3(&namespace, name.as_bytes())
        };
        Ok(id.hyphenated().to_string())
    }
}

impl Node for GenerateId {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let kind = match &self.kind {
            IdType::Fixed(kind) => *kind,
            IdType::Template(t) => {
                let text = render(t, payload)?;
                Kind::parse(&text).ok_or_else(|| {
                    invalid(format!("idTypeTemplate must be {KINDS}, not \"{text}\""))
                })?
            }
        };
        let id = match kind {
            Kind::UuidV1 => Uuid::now_v1(node_id()).hyphenated().to_string(),
            Kind::UuidV3 => self.name_based(payload, false)?,
            Kind::UuidV4 => Uuid::new_v4().hyphenated().to_string(),
            Kind::UuidV5 => self.name_based(payload, true)?,
            Kind::ObjectId => flowd_model::id::new_id(),
            Kind::NanoId => {
                let length = match &self.length {
                    Some(t) => nanoid_length(&render(t, payload)?)?,
                    None => DEFAULT_NANOID,
                };
                nanoid(length)
            }
        };
        self.destination.set(payload, Value::String(id));
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    const DNS: &str = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";

    fn generate(config: Value, payload: Value) -> String {
        let mut config = config;
        config["destinationPath"] = json!("working.id");
        let (port, after) = run_node("GenerateIdNode", &config, payload).unwrap();
        assert_eq!(port, 0);
        after["working"]["id"]
            .as_str()
            .expect("a string id")
            .to_owned()
    }

    fn version(id: &str) -> usize {
        let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
        assert_eq!(
            id,
            parsed.hyphenated().to_string(),
            "lower-case, hyphenated"
        );
        parsed.get_version_num()
    }

    #[test]
    fn uuids() {
        assert_eq!(version(&generate(json!({}), json!({}))), 4);
        assert_eq!(
            version(&generate(json!({"idTypeTemplate": "uuidv4"}), json!({}))),
            4
        );
        assert_eq!(
            version(&generate(json!({"idTypeTemplate": " UUIDv1 "}), json!({}))),
            1
        );
        let a = generate(json!({"idTypeTemplate": "uuidv4"}), json!({}));
        let b = generate(json!({"idTypeTemplate": "uuidv4"}), json!({}));
        assert_ne!(a, b);
    }

    #[test]
    fn name_based_uuids_are_the_known_ones() {
        let payload = json!({"data": {"ns": DNS, "host": "www.example.com"}});
        let v5 = generate(
            json!({"idTypeTemplate": "uuidv5", "namespaceTemplate": "{{data.ns}}",
                "valueTemplate": "{{data.host}}"}),
            payload.clone(),
        );
        assert_eq!(v5, "2ed6657d-e927-568b-95e1-2665a8aea6a2");
        let v3 = generate(
            json!({"idTypeTemplate": "uuidv3", "namespaceTemplate": DNS,
                "valueTemplate": "www.example.com"}),
            payload,
        );
        assert_eq!(v3, "5df41881-3aed-3515-88a7-2f4a814cf09e");
    }

    #[test]
    fn object_ids_and_nanoids() {
        let id = generate(json!({"idTypeTemplate": "objectId"}), json!({}));
        assert_eq!(id.len(), 24);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        let id = generate(json!({"idTypeTemplate": "nanoid"}), json!({}));
        assert_eq!(id.len(), 21);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{id}"
        );
        let id = generate(
            json!({"idTypeTemplate": "{{data.kind}}", "numCharactersTemplate": "{{data.n}}"}),
            json!({"data": {"kind": "NanoID", "n": 12}}),
        );
        assert_eq!(id.len(), 12);
        let id = generate(
            json!({"idTypeTemplate": "nanoid", "numCharactersTemplate": "256"}),
            json!({}),
        );
        assert_eq!(id.len(), 256);
    }

    #[test]
    fn bad_values_halt() {
        let run = |config: Value, payload: Value| {
            let mut config = config;
            config["destinationPath"] = json!("working.id");
            run_node("GenerateIdNode", &config, payload).unwrap_err()
        };
        let p = json!({"data": {"kind": "guid", "n": "0", "big": "257", "half": "2.5",
            "ns": "not-a-uuid", "empty": ""}});
        for (config, name) in [
            (
                json!({"idTypeTemplate": "{{data.kind}}"}),
                ErrorName::ValidationError,
            ),
            (
                json!({"idTypeTemplate": "nanoid", "numCharactersTemplate": "{{data.n}}"}),
                ErrorName::ValidationError,
            ),
            (
                json!({"idTypeTemplate": "nanoid", "numCharactersTemplate": "{{data.big}}"}),
                ErrorName::ValidationError,
            ),
            (
                json!({"idTypeTemplate": "nanoid", "numCharactersTemplate": "{{data.half}}"}),
                ErrorName::ValidationError,
            ),
            (
                json!({"idTypeTemplate": "uuidv5", "namespaceTemplate": "{{data.ns}}",
                    "valueTemplate": "x"}),
                ErrorName::ValidationError,
            ),
            (
                json!({"idTypeTemplate": "uuidv3", "namespaceTemplate": DNS,
                    "valueTemplate": "{{data.empty}}"}),
                ErrorName::TemplateError,
            ),
            (
                json!({"idTypeTemplate": "{{data.v}}", "namespaceTemplate": DNS}),
                ErrorName::TemplateError,
            ),
        ] {
            let mut payload = p.clone();
            payload["data"]["v"] = json!("uuidv5");
            assert_eq!(run(config.clone(), payload).name, name, "{config}");
        }
        // A blank rendered type is the default.
        let id = generate(json!({"idTypeTemplate": "{{data.none}}"}), json!({}));
        assert_eq!(version(&id), 4);
    }

    #[test]
    fn config_is_checked() {
        for bad in [
            json!({}),
            json!({"destinationPath": ""}),
            json!({"destinationPath": "{{x}}"}),
            json!({"idTypeTemplate": "guid", "destinationPath": "w.id"}),
            json!({"idTypeTemplate": "uuidv5", "destinationPath": "w.id"}),
            json!({"idTypeTemplate": "uuidv3", "namespaceTemplate": DNS, "destinationPath": "w.id"}),
            json!({"idTypeTemplate": "uuidv5", "namespaceTemplate": "dns", "valueTemplate": "x",
                "destinationPath": "w.id"}),
            json!({"idTypeTemplate": "nanoid", "numCharactersTemplate": "300", "destinationPath": "w.id"}),
            json!({"idTypeTemplate": 4, "destinationPath": "w.id"}),
            json!({"idTypeTemplate": "{{#if}}", "destinationPath": "w.id"}),
        ] {
            let error = compile_node("GenerateIdNode", &bad).err().expect("refused");
            assert!(error.0.contains("(GenerateIdNode)"), "{bad}: {error}");
        }
        assert!(compile_node(
            "GenerateIdNode",
            &json!({"idTypeTemplate": "", "destinationPath": "w.id", "unknown": 1})
        )
        .is_ok());
    }
}
