//! Expand arbitrary words with every lexer setting: errors are fine, panics are not.
#![no_main]

use std::collections::BTreeMap;

use drydock_dockerfile::expand::Lexer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    // First line: the word; the rest: NAME=value lines for the environment.
    let mut lines = s.splitn(2, '\n');
    let word = lines.next().unwrap_or("");
    let env: BTreeMap<String, String> = lines
        .next()
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for flags in 0..16u8 {
        let mut lx = Lexer::new(if flags & 1 == 0 { '\\' } else { '`' });
        lx.raw_quotes = flags & 2 != 0;
        lx.raw_escapes = flags & 4 != 0;
        lx.skip_unset_env = flags & 8 != 0;
        let _ = lx.expand(word, &env);
        let _ = lx.expand_words(word, &env);
        lx.skip_process_quotes = true;
        let _ = lx.expand(word, &env);
    }
});
