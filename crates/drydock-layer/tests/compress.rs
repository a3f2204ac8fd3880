//! Compression: deterministic across thread counts, readable by the standard tools, digests right.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use common::*;
use drydock_layer::*;
use drydock_oci::Digest;
use proptest::prelude::*;

fn opts(threads: usize, block: usize) -> CompressOptions {
    CompressOptions {
        threads,
        gzip_block: block,
        ..Default::default()
    }
}

/// Compressible but not trivial data.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if (x >> 60) < 12 {
                b"drydock layers "[i % 15]
            } else {
                (x >> 33) as u8
            }
        })
        .collect()
}

fn decompress_all(bytes: &[u8], c: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    decompress(bytes, c).unwrap().read_to_end(&mut out).unwrap();
    out
}

/// Writes `input` in pieces of the given sizes (cycled).
fn compress_in_pieces(
    input: &[u8],
    c: Compression,
    o: &CompressOptions,
    pieces: &[usize],
) -> Vec<u8> {
    let mut enc = Encoder::new(Vec::new(), c, o).unwrap();
    let mut pos = 0;
    let mut i = 0;
    while pos < input.len() {
        let n = pieces[i % pieces.len()].max(1).min(input.len() - pos);
        enc.write_all(&input[pos..pos + n]).unwrap();
        enc.flush().unwrap();
        pos += n;
        i += 1;
    }
    enc.finish().unwrap()
}

#[test]
fn gzip_is_the_same_for_1_2_and_4_threads_at_block_edges() {
    let block = 64 * 1024;
    for len in [
        0,
        1,
        1000,
        block - 1,
        block,
        block + 1,
        3 * block,
        5 * block + 77,
    ] {
        let input = data(len, len as u64);
        let one = compress_bytes(&input, Compression::Gzip, &opts(1, block)).unwrap();
        for t in [2, 4] {
            let many = compress_bytes(&input, Compression::Gzip, &opts(t, block)).unwrap();
            assert!(one == many, "len {len}: 1 vs {t} threads differ");
        }
        assert_eq!(decompress_all(&one, Compression::Gzip), input, "len {len}");
        // Fixed header: mtime 0, no name, OS 255.
        assert_eq!(&one[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    }
}

#[test]
fn zstd_is_the_same_for_1_2_and_4_threads() {
    // Bigger than zstd's multithreading job size at level 3, so several jobs run at once.
    let input = data(12 * 1024 * 1024, 7);
    let one = compress_bytes(&input, Compression::Zstd, &opts(1, 0)).unwrap();
    for t in [2, 4] {
        let many = compress_bytes(&input, Compression::Zstd, &opts(t, 0)).unwrap();
        assert!(one == many, "zstd 1 vs {t} workers differ");
    }
    assert_eq!(decompress_all(&one, Compression::Zstd), input);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn output_does_not_depend_on_threads_or_write_sizes(
        len in 0usize..300_000,
        seed in any::<u64>(),
        pieces in prop::collection::vec(1usize..70_000, 1..5),
        threads in 2usize..5,
    ) {
        let input = data(len, seed);
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let reference = compress_bytes(&input, c, &opts(1, 32 * 1024)).unwrap();
            let other = compress_in_pieces(&input, c, &opts(threads, 32 * 1024), &pieces);
            prop_assert!(reference == other, "{:?} differs", c);
            prop_assert!(decompress_all(&reference, c) == input);
        }
    }
}

fn tool_decompress(tool: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{tool} failed");
    out.stdout
}

#[test]
fn gzip_and_zstd_tools_read_our_output() {
    let input = data(3 * 1024 * 1024 + 5, 3);
    if require(have_tool("gzip"), "gzip") {
        let gz = compress_bytes(&input, Compression::Gzip, &opts(2, 128 * 1024)).unwrap();
        assert!(tool_decompress("gzip", &["-dc"], &gz) == input);
    }
    if require(have_tool("zstd"), "zstd") {
        let zs = compress_bytes(&input, Compression::Zstd, &opts(2, 0)).unwrap();
        assert!(tool_decompress("zstd", &["-dc"], &zs) == input);
    }
}

#[test]
fn detection_by_magic_bytes() {
    let input = data(5000, 1);
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let bytes = compress_bytes(&input, c, &opts(1, 0)).unwrap();
        assert_eq!(detect(&bytes), c);
        let (found, mut r) = decompress_detect(&bytes[..]).unwrap();
        assert_eq!(found, c);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(out == input);
    }
    // A tar starts with a file name, not a magic.
    assert_eq!(detect(b"etc/passwd\0"), Compression::None);
}

#[test]
fn gzip_of_several_members_reads_whole() {
    let a = compress_bytes(b"first ", Compression::Gzip, &opts(1, 0)).unwrap();
    let b = compress_bytes(b"second", Compression::Gzip, &opts(1, 0)).unwrap();
    let both = [a, b].concat();
    assert_eq!(decompress_all(&both, Compression::Gzip), b"first second");
}

#[test]
fn layer_writer_digests_match_what_was_written() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("etc")).unwrap();
    std::fs::write(src.path().join("etc/hostname"), b"drydock\n").unwrap();
    std::fs::write(src.path().join("big"), data(1_000_000, 9)).unwrap();
    let mut tar = Vec::new();
    write_tree(src.path(), &mut tar, &TarOptions::with_epoch(0)).unwrap();
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut lw = LayerWriter::new(Vec::new(), c, &opts(2, 64 * 1024)).unwrap();
        write_tree(src.path(), &mut lw, &TarOptions::with_epoch(0)).unwrap();
        let (d, blob) = lw.finish().unwrap();
        assert_eq!(d.compression, c);
        assert_eq!(d.diff_id, Digest::sha256(&tar));
        assert_eq!(d.digest, Digest::sha256(&blob));
        assert_eq!(d.size, blob.len() as u64);
        assert_eq!(d.tar_size, tar.len() as u64);
        assert!(decompress_all(&blob, c) == tar);
        // And reading back through DigestReader gives the diff ID.
        let mut dr = DigestReader::new(decompress(&blob[..], c).unwrap());
        let target = tempfile::tempdir().unwrap();
        apply(&mut dr, target.path(), &ApplyOptions::default()).unwrap();
        let (digest, n) = dr.finish().unwrap();
        assert_eq!(digest, d.diff_id);
        assert_eq!(n, tar.len() as u64);
    }
}

#[test]
fn read_ahead_passes_bytes_and_errors_through() {
    let input = data(2_000_000, 5);
    let gz = compress_bytes(&input, Compression::Gzip, &opts(2, 64 * 1024)).unwrap();
    let mut out = Vec::new();
    ReadAhead::new(decompress(std::io::Cursor::new(gz.clone()), Compression::Gzip).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    assert!(out == input);
    let mut corrupt = gz;
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    corrupt[mid + 1] ^= 0xff;
    let mut out = Vec::new();
    let r = ReadAhead::new(decompress(std::io::Cursor::new(corrupt), Compression::Gzip).unwrap())
        .read_to_end(&mut out);
    assert!(r.is_err(), "corrupt gzip must fail");
}

/// Fails once more than `left` bytes were written.
struct Failing {
    left: usize,
}

impl Write for Failing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.left {
            return Err(std::io::Error::other("disk full"));
        }
        self.left -= buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn output_errors_come_back_without_hanging() {
    let input = data(6 * 1024 * 1024, 11);
    for c in [Compression::Gzip, Compression::Zstd] {
        let mut enc = Encoder::new(Failing { left: 10_000 }, c, &opts(2, 64 * 1024)).unwrap();
        let r = enc.write_all(&input).and_then(|_| enc.finish().map(|_| ()));
        let err = r.expect_err("the output failed");
        assert!(err.to_string().contains("disk full"), "{c:?}: {err}");
    }
}

/// A sink that hashes what it is given, as the content store's blob writer does.
struct HashingVec(Vec<u8>, drydock_oci::Hasher);

impl std::io::Write for HashingVec {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        self.1.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl DigestingSink for HashingVec {
    fn digest_so_far(&self) -> Digest {
        self.1.clone().finish()
    }
}

#[test]
fn layer_writer_over_a_digesting_sink_reports_the_sinks_digest() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("big"), data(500_000, 3)).unwrap();
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let plain = {
            let mut lw = LayerWriter::new(Vec::new(), c, &opts(2, 64 * 1024)).unwrap();
            write_tree(src.path(), &mut lw, &TarOptions::with_epoch(0)).unwrap();
            lw.finish().unwrap()
        };
        let sink = HashingVec(Vec::new(), drydock_oci::Algorithm::Sha256.hasher());
        let mut lw = LayerWriter::over_digesting_sink(sink, c, &opts(2, 64 * 1024)).unwrap();
        write_tree(src.path(), &mut lw, &TarOptions::with_epoch(0)).unwrap();
        let (d, sink) = lw.finish().unwrap();
        assert_eq!(d, plain.0, "{c:?}");
        assert_eq!(sink.0, plain.1);
        assert_eq!(d.digest, Digest::sha256(&sink.0));
    }
}
