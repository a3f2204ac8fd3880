//! `schema/drydock.schema.json` must equal what the key tables generate. Regenerate with
//! `DRYDOCK_UPDATE_SCHEMA=1 cargo nextest run -p drydock-config schema`.

#[test]
fn schema_file_is_in_sync() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/drydock.schema.json");
    let want = drydock_config::schema::json_schema_text();
    if std::env::var_os("DRYDOCK_UPDATE_SCHEMA").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &want).unwrap();
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "schema/drydock.schema.json is stale: run DRYDOCK_UPDATE_SCHEMA=1 cargo nextest run -p drydock-config schema"
    );
}

#[test]
fn schema_knows_every_documented_key() {
    let s = drydock_config::schema::json_schema();
    let job = &s["properties"]["jobs"]["additionalProperties"]["properties"];
    for k in [
        "image",
        "services",
        "steps",
        "needs",
        "if",
        "env",
        "persist",
        "timeout-minutes",
        "continue-on-error",
        "working-directory",
        "shell",
        "secrets",
        "outputs",
    ] {
        assert!(job.get(k).is_some(), "job key {k}");
    }
    let on = &s["properties"]["on"]["oneOf"][2]["properties"];
    assert!(on.get("push").is_some() && on.get("schedule").is_some());
}
