//! The JSON Schema of `drydock.yml` for editors, generated from the key tables the parser uses
//! (`keys.rs`), so a key the parser accepts is a key the schema knows. The file
//! `schema/drydock.schema.json` is kept equal to [`json_schema`] by a test.

use serde_json::{Map, Value, json};

use crate::keys::{self, Keys};

fn obj(keys: Keys, types: &dyn Fn(&str) -> Value) -> Value {
    let mut props = Map::new();
    for (k, desc) in keys {
        let mut t = types(k);
        if let Value::Object(m) = &mut t {
            m.insert("description".into(), Value::String((*desc).into()));
        }
        props.insert((*k).into(), t);
    }
    json!({ "type": "object", "additionalProperties": false, "properties": props })
}

fn strings() -> Value {
    json!({ "oneOf": [ { "type": "string" }, { "type": "array", "items": { "type": "string" } } ] })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn string_map() -> Value {
    json!({ "type": "object", "additionalProperties": { "type": ["string", "number", "boolean"] } })
}

fn bool_or_expr() -> Value {
    json!({ "oneOf": [ { "type": "boolean" }, { "type": "string", "pattern": "\\$\\{\\{" } ] })
}

fn positive() -> Value {
    json!({ "type": "number", "exclusiveMinimum": 0 })
}

fn triggers() -> Value {
    let push = obj(keys::PUSH, &|_| strings());
    let pr = obj(keys::PULL_REQUEST, &|_| strings());
    let schedule = {
        let mut s = obj(keys::SCHEDULE, &|_| string());
        s["required"] = json!(["cron"]);
        json!({ "type": "array", "items": s })
    };
    let map = obj(keys::ON, &|k| match k {
        "push" => json!({ "oneOf": [ { "type": "null" }, push.clone() ] }),
        "pull_request" => json!({ "oneOf": [ { "type": "null" }, pr.clone() ] }),
        "schedule" => schedule.clone(),
        "image" => strings(),
        _ => json!({ "type": ["null", "boolean", "object"] }),
    });
    let names: Vec<&str> = keys::names(keys::ON);
    json!({ "oneOf": [
        { "type": "string", "enum": names },
        { "type": "array", "items": { "type": "string", "enum": names } },
        map
    ] })
}

/// The schema as a JSON value.
pub fn json_schema() -> Value {
    let step = {
        let mut s = obj(keys::STEP, &|k| match k {
            "attach" => {
                json!({ "oneOf": [ { "const": true }, { "type": "array", "items": { "type": "string" } } ] })
            }
            "if" => json!({ "type": ["string", "boolean"] }),
            "env" => string_map(),
            "continue-on-error" => bool_or_expr(),
            "timeout-minutes" => positive(),
            _ => string(),
        });
        s["oneOf"] = json!([
            { "required": ["run"] }, { "required": ["build"] }, { "required": ["push"] }, { "required": ["attach"] }
        ]);
        s
    };
    let service = {
        let mut s = obj(keys::SERVICE, &|k| match k {
            "env" => string_map(),
            "timeout" => json!({ "type": ["string", "number"] }),
            "ports" => json!({ "type": "array", "items": { "type": ["integer", "string"] } }),
            _ => string(),
        });
        s["required"] = json!(["image"]);
        s
    };
    let job = {
        let mut j = obj(keys::JOB, &|k| match k {
            "services" => json!({ "type": "object", "additionalProperties": service.clone() }),
            "steps" => json!({ "type": "array", "minItems": 1, "items": step.clone() }),
            "needs" | "persist" | "secrets" => strings(),
            "if" => json!({ "type": ["string", "boolean"] }),
            "on" => triggers(),
            "env" | "outputs" => string_map(),
            "timeout-minutes" => positive(),
            "continue-on-error" => bool_or_expr(),
            _ => string(),
        });
        j["required"] = json!(["steps"]);
        j
    };
    let image = obj(keys::IMAGE, &|k| match k {
        "args" | "labels" => string_map(),
        "platforms" | "repositories" => strings(),
        "push" => json!({ "type": ["boolean", "string"] }),
        _ => string(),
    });
    let allow = obj(keys::ALLOW, &|_| strings());
    let group = {
        let mut g = obj(keys::SECRET_GROUP, &|k| match k {
            "allow" => allow.clone(),
            _ => {
                json!({ "type": "array", "items": { "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" } })
            }
        });
        g["required"] = json!(["keys"]);
        g
    };
    let name = "^[A-Za-z_][A-Za-z0-9_-]*$";
    let mut root = obj(keys::PIPELINE, &|k| match k {
        "on" => triggers(),
        "env" => string_map(),
        "images" => {
            json!({ "type": "object", "propertyNames": { "pattern": name }, "additionalProperties": image.clone() })
        }
        "secrets" => {
            json!({ "type": "object", "propertyNames": { "pattern": name }, "additionalProperties": group.clone() })
        }
        _ => {
            json!({ "type": "object", "propertyNames": { "pattern": name }, "minProperties": 1, "additionalProperties": job.clone() })
        }
    });
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["$id"] = json!("https://example.invalid/drydock/drydock.schema.json");
    root["title"] = json!("drydock.yml");
    root["required"] = json!(["jobs"]);
    root
}

/// The schema as pretty-printed text (what `schema/drydock.schema.json` holds).
pub fn json_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    s.push('\n');
    s
}
