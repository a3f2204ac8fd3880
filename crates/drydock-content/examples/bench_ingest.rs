//! Ingests one file into a fresh content store and prints the seconds it took and the digest.
//! Used by `bench/ingest.sh`; not a test.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Read;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let (file, store_dir) = match (args.next(), args.next()) {
        (Some(f), Some(s)) => (f, s),
        _ => {
            eprintln!("usage: bench_ingest FILE STORE_DIR");
            std::process::exit(2);
        }
    };
    let store = drydock_content::Store::open(&store_dir).expect("open store");
    let start = Instant::now();
    let mut f = std::fs::File::open(&file).expect("open file");
    let mut w = store.writer().expect("writer");
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        std::io::Write::write_all(&mut w, &buf[..n]).expect("write");
    }
    let (digest, size) = w.commit().expect("commit");
    println!("{:.3} {digest} {size}", start.elapsed().as_secs_f64());
}
