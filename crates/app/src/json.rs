//! Settings documents as JSON: parsing with the path of the field at fault,
//! JSON Merge Patch (RFC 7396) for partial updates, and the list of changed
//! fields the audit trail records.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::AppError;

/// Parses `value`, naming the failing field by its dotted path
/// (`transport.port`).
pub(crate) fn parse_at<T: DeserializeOwned>(value: Value) -> Result<T, AppError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // A domain parser's message starts with its own field name; a check
        // over a whole section names the nested field in full.
        let message = match inner.split_once(": ") {
            Some((named, rest)) if named.starts_with(&format!("{path}.")) => {
                path = named.to_owned();
                format!("{path}: {rest}")
            }
            Some((_, rest)) if !path.is_empty() && path != "." => format!("{path}: {rest}"),
            _ => inner,
        };
        AppError::InvalidField {
            field: if path == "." { String::new() } else { path },
            message,
        }
    })
}

/// Tells "absent" (leave as is) from `null` (clear) in an update.
pub(crate) fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// Applies a JSON Merge Patch: objects merge key by key, `null` removes a
/// key, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { return };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The dotted paths of the leaves that differ between `before` and `after`
/// (arrays count as leaves).
pub(crate) fn changed_paths(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff("", before, after, &mut out);
    out
}

fn diff(prefix: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let null = Value::Null;
                diff(
                    &path,
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a != b => out.push(prefix.to_owned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        merge_patch(&mut doc, &json!({"list": [1, 2]}));
        assert_eq!(doc["list"], json!([1, 2]));
    }

    #[test]
    fn changed_leaves_are_named() {
        let a = json!({"x": 1, "t": {"port": 25, "host": "h"}});
        let b = json!({"x": 1, "t": {"port": 587, "host": "h", "new": true}});
        assert_eq!(changed_paths(&a, &b), vec!["t.new", "t.port"]);
    }

    #[test]
    fn parse_names_the_path() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            inner: Inner,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            port: herald_domain::Port,
        }
        let err = parse_at::<Outer>(json!({"inner": {"port": 0}})).unwrap_err();
        let AppError::InvalidField { field, message } = err else {
            panic!("{err:?}")
        };
        assert_eq!(field, "inner.port");
        assert_eq!(message, "inner.port: must be between 1 and 65535");
    }
}
