//! The registry benchmark's driver (bench/registry-client.sh), using the same library calls as
//! `drydock push`/`pull`:
//!
//! - `make STORE NAME LAYERS TOTAL_BYTES`: an image of LAYERS tar layers of random data (so
//!   compression cannot cheat), TOTAL bytes in all, named NAME; also exported as an OCI layout
//!   at `STORE.oci` (tag `bench`) for skopeo.
//! - `push STORE NAME TARGET`, `pull STORE REF`: timed by the script.
#![allow(clippy::print_stdout)]

use drydock_content::Store;
use drydock_content::transport::StoredLayer;
use drydock_oci::spec::{Descriptor, MediaType};
use drydock_oci::{Platform, Reference, media_type};
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("make") => make(&args[1..]),
        Some("push") => {
            let store = Store::open(&args[1]).expect("open store");
            let source = Reference::parse(&args[2]).expect("reference");
            let target = Reference::parse(&args[3]).expect("reference");
            let top = drydock_content::names::get(&store, &source)
                .expect("names")
                .expect("image in store");
            let client = client();
            let pushed = client
                .push(&store, &top, &[target], &Default::default())
                .expect("push");
            println!("{}", pushed.digest);
        }
        Some("pull") => {
            let store = Store::open(&args[1]).expect("open store");
            let reference = Reference::parse(&args[2]).expect("reference");
            let pulled = client()
                .pull(&store, &reference, &Platform::host())
                .expect("pull");
            println!("{}", pulled.top.digest());
        }
        _ => panic!("usage: registry_bench make|push|pull ..."),
    }
}

fn client() -> drydock_registry_client::BlockingClient {
    let opts = drydock_registry_client::ClientOptions::from_env(None).expect("options");
    drydock_registry_client::BlockingClient::new(opts).expect("client")
}

fn make(args: &[String]) {
    assert!(
        args.len() == 4,
        "usage: registry_bench make STORE_DIR NAME LAYERS TOTAL_BYTES"
    );
    let store = Store::open(&args[0]).expect("open store");
    let name = Reference::parse(&args[1]).expect("reference");
    let layers: u64 = args[2].parse().expect("layers");
    let total: u64 = args[3].parse().expect("total bytes");
    let per = total / layers;
    let mut stored = Vec::new();
    let mut seed = 0x1234_5678_9abc_def1u64 ^ total;
    for i in 0..layers {
        let mut w = store.writer().expect("writer");
        let mut b = tar::Builder::new(&mut w);
        let mut h = tar::Header::new_ustar();
        h.set_path(format!("data/layer-{i}.bin")).unwrap();
        h.set_size(per);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        let mut data = Vec::with_capacity(per as usize);
        while (data.len() as u64) < per {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            data.extend_from_slice(&seed.to_le_bytes());
        }
        data.truncate(per as usize);
        b.append(&h, data.as_slice()).unwrap();
        b.into_inner().unwrap().flush().unwrap();
        let (digest, size) = w.commit().expect("commit layer");
        stored.push(StoredLayer {
            descriptor: Descriptor::new(
                MediaType::from(media_type::OCI_LAYER_TAR),
                size,
                drydock_oci::spec::Digest::from(&digest),
            ),
            diff_id: digest,
        });
    }
    let history: Vec<String> = (0..layers).map(|i| format!("bench layer {i}")).collect();
    let top = drydock_content::image::assemble(
        &store,
        &Platform::host(),
        0,
        &stored,
        &history,
        serde_json::json!({}),
    )
    .expect("assemble");
    drydock_content::names::set(&store, &name, &top).expect("name");
    let oci = std::path::PathBuf::from(format!("{}.oci", args[0]));
    drydock_content::transport::export_oci_dir(
        &store,
        &top,
        &oci,
        Some("bench"),
        &Platform::host(),
    )
    .expect("export");
    println!("{}", top.digest());
}
