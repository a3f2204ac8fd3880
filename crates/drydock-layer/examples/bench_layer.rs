//! Benchmark driver for `bench/layer.sh`: the drydock side of each figure.
//!
//!   bench_layer create TREE OUT none|gzip|zstd   # prints "SECONDS diff_id digest size"
//!   bench_layer extract LAYER TARGET              # prints "SECONDS entries bytes"
//!   bench_layer compress FILE OUT gzip|zstd       # compression alone; prints "SECONDS"
#![allow(clippy::print_stdout)]

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use drydock_layer::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("create") if args.len() == 5 => {
            let compression = match args[4].as_str() {
                "none" => Compression::None,
                "gzip" => Compression::Gzip,
                "zstd" => Compression::Zstd,
                other => return Err(format!("unknown compression {other}").into()),
            };
            let start = Instant::now();
            let out = File::create(&args[3])?;
            let mut lw = LayerWriter::new(out, compression, &CompressOptions::default())?;
            write_tree(Path::new(&args[2]), &mut lw, &TarOptions::with_epoch(0))?;
            let (d, file) = lw.finish()?;
            drop(file);
            let secs = start.elapsed().as_secs_f64();
            println!("{secs:.3} {} {} {}", d.diff_id, d.digest, d.size);
        }
        Some("compress") if args.len() == 5 => {
            let compression = if args[4] == "zstd" {
                Compression::Zstd
            } else {
                Compression::Gzip
            };
            let start = Instant::now();
            let mut input = File::open(&args[2])?;
            let threads = std::env::var("BENCH_THREADS")
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let opts = CompressOptions {
                threads,
                ..Default::default()
            };
            let mut enc = Encoder::new(File::create(&args[3])?, compression, &opts)?;
            std::io::copy(&mut input, &mut enc)?;
            enc.finish()?;
            println!("{:.3}", start.elapsed().as_secs_f64());
        }
        Some("extract") if args.len() == 4 => {
            let start = Instant::now();
            let (_, decoder) = decompress_detect(File::open(&args[2])?)?;
            let stats = apply(
                ReadAhead::new(decoder),
                Path::new(&args[3]),
                &ApplyOptions::default(),
            )?;
            let secs = start.elapsed().as_secs_f64();
            println!("{secs:.3} {} {}", stats.entries, stats.bytes);
        }
        _ => {
            return Err(
                "usage: bench_layer create TREE OUT none|gzip|zstd | extract LAYER TARGET".into(),
            );
        }
    }
    Ok(())
}
