//! Parse, check and plan arbitrary text: nothing may panic, spans must stay in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let df = drydock_dockerfile::parse(src);
    for d in &df.diagnostics {
        assert!(d.span.end <= src.len(), "diagnostic span out of bounds");
    }
    for i in &df.instructions {
        assert!(i.span.start <= i.span.end && i.span.end <= src.len(), "instruction span out of bounds");
    }
    let _ = drydock_dockerfile::lint::check(&df);
    let mut opts = drydock_frontend::BuildOptions::new(drydock_oci::Platform::parse("linux/amd64").unwrap());
    opts.dockerignore = drydock_dockerfile::Dockerignore::parse(src);
    let report = drydock_frontend::check(src, &opts);
    if let Some(plan) = report.plan {
        let _ = plan.digest();
        let _ = plan.render_text();
    }
    let _ = opts.dockerignore.is_excluded(src);
    let _ = opts.dockerignore.could_reinclude_under(src);
});
