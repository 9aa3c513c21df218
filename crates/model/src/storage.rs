//! Rules of workflow storage (spec §7 and decision 8): keys are 1–255 characters, a value's
//! compact JSON is at most 16 KB, and `memoryUsed` is the sum over entries of the UTF-8 bytes of
//! the key plus the bytes of the value's compact JSON.

use serde_json::Value;

/// Longest key, in characters.
pub const MAX_KEY_CHARS: usize = 255;
/// Largest value, in bytes of compact JSON.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

/// Why a storage write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageRuleError {
    #[error("key must be 1 to {MAX_KEY_CHARS} characters long")]
    KeyLength,
    #[error(
        "value of key \"{key}\" is {bytes} bytes of JSON, over the limit of {MAX_VALUE_BYTES}"
    )]
    ValueTooLarge { key: String, bytes: usize },
}

/// Checks a key's length.
pub fn check_key(key: &str) -> Result<(), StorageRuleError> {
    let chars = key.chars().count();
    if chars == 0 || chars > MAX_KEY_CHARS {
        return Err(StorageRuleError::KeyLength);
    }
    Ok(())
}

/// Serializes a value compactly and checks its size; the text is what the store keeps.
pub fn encode_value(key: &str, value: &Value) -> Result<String, StorageRuleError> {
    // Straight into a buffer: `Value`'s `Display` writes piece by piece through `fmt::Write`,
    // about twice the work. A `Value` always serializes (its keys are strings).
    let text = serde_json::to_string(value).unwrap_or_default();
    if text.len() > MAX_VALUE_BYTES {
        return Err(StorageRuleError::ValueTooLarge {
            key: key.to_owned(),
            bytes: text.len(),
        });
    }
    Ok(text)
}

/// What one entry counts toward `memoryUsed`.
pub fn entry_size(key: &str, value_json: &str) -> u64 {
    (key.len() + value_json.len()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_lengths() {
        assert_eq!(check_key(""), Err(StorageRuleError::KeyLength));
        assert!(check_key(&"k".repeat(255)).is_ok());
        assert!(check_key(&"é".repeat(255)).is_ok());
        assert_eq!(
            check_key(&"k".repeat(256)),
            Err(StorageRuleError::KeyLength)
        );
    }

    #[test]
    fn value_sizes() {
        assert_eq!(
            encode_value("k", &json!({"a": [1, 2]})).unwrap(),
            r#"{"a":[1,2]}"#
        );
        let big = json!("x".repeat(MAX_VALUE_BYTES));
        assert!(matches!(
            encode_value("k", &big),
            Err(StorageRuleError::ValueTooLarge { .. })
        ));
        let fits = json!("x".repeat(MAX_VALUE_BYTES - 2));
        assert!(encode_value("k", &fits).is_ok());
    }

    #[test]
    fn memory_formula() {
        // "hello" → 5 + len("\"hello\"") = 5 + 7
        assert_eq!(entry_size("hello", "\"hello\""), 12);
        assert_eq!(entry_size("é", "1"), 3);
    }
}
