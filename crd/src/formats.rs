//! Integer formats the Kubernetes API server knows.
//!
//! schemars describes `u32` and `u64` fields with the formats `uint32` and
//! `uint64`, which the API server does not recognise: it accepts the CRD but
//! warns "unrecognized format" on every install. Their `minimum: 0` already
//! says they are unsigned, so the formats become `int32` and `int64`.

use schemars::Schema;
use schemars::transform::transform_subschemas;
use serde_json::Value;

/// Rewrites `uint32`/`uint64` formats in `schema` and every subschema to
/// `int32`/`int64`, keeping a minimum of at least 0.
pub fn kubernetes_integer_formats(schema: &mut Schema) {
    transform_subschemas(&mut kubernetes_integer_formats, schema);
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let known = match object.get("format").and_then(Value::as_str) {
        Some("uint32" | "uint16" | "uint8") => "int32",
        Some("uint64" | "uint") => "int64",
        _ => return,
    };
    object.insert("format".into(), Value::from(known));
    if !object.contains_key("minimum") {
        object.insert("minimum".into(), Value::from(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::json_schema;

    #[test]
    fn unsigned_formats_become_signed_ones_with_a_minimum() {
        let mut schema = json_schema!({
            "type": "object",
            "properties": {
                "a": {"type": "integer", "format": "uint32", "minimum": 1},
                "b": {"type": "array", "items": {"type": "integer", "format": "uint64"}},
                "c": {"type": "integer", "format": "int32"},
            },
        });
        kubernetes_integer_formats(&mut schema);
        let value = schema.as_value();
        assert_eq!(value["properties"]["a"]["format"], "int32");
        assert_eq!(value["properties"]["a"]["minimum"], 1);
        assert_eq!(value["properties"]["b"]["items"]["format"], "int64");
        assert_eq!(value["properties"]["b"]["items"]["minimum"], 0);
        assert_eq!(value["properties"]["c"]["format"], "int32");
    }
}
