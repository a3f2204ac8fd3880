//! A bare `drydock registry serve` for benchmarks: the library's server on the given address
//! and storage, without the rest of the drydock binary.
//! Usage: registry-serve ADDR STORAGE
#![allow(clippy::print_stderr)]

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:5000".into());
    let storage = args
        .next()
        .unwrap_or_else(|| "/tmp/drydock-registry".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut cfg = drydock_registry_server::RegistryConfig::new(storage);
        cfg.gc_interval = None;
        let registry = drydock_registry_server::Registry::open(cfg).unwrap();
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        eprintln!("serving on {addr}");
        let opts = drydock_registry_server::ServeOptions { tls: None };
        drydock_registry_server::serve(registry, listener, opts, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .unwrap();
    });
}
