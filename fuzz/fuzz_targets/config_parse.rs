//! Parse arbitrary drydock.yml text and render every diagnostic: errors are fine, panics are
//! not (spans must stay inside the text).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Err(diags) = drydock_config::parse(s) {
        for d in &diags {
            assert!(d.span.end <= s.len(), "span past the end: {d:?}");
        }
        let _ = drydock_diagnostics::render_all("drydock.yml", s, &diags);
    }
});
