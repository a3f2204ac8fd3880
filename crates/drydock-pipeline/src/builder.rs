//! The engine's [`ImageBuilder`] over drydock-builder: a `build:` step becomes a
//! [`drydock_builder::BuildRequest`], its progress becomes log lines of the step.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use drydock_builder::{
    BuildRequest as Req, Builder, ContextSource, DockerfileSource, Event, Progress, SecretSource,
    Secrets,
};
use drydock_oci::Platform;

use crate::images::{BuildRequest, BuiltImage, ImageBuilder};

impl ImageBuilder for Builder {
    fn build(&self, request: BuildRequest<'_>) -> Result<BuiltImage, String> {
        let image = request.image;
        let context = match &image.git_context {
            Some(url) => ContextSource::Git(url.clone()),
            None => ContextSource::Dir(request.context.clone()),
        };
        // A Dockerfile inside the context is named relative to it, like `docker build`.
        let dockerfile = match request.dockerfile.strip_prefix(&request.context) {
            Ok(rel) if image.git_context.is_none() => {
                DockerfileSource::InContext(rel.to_string_lossy().into_owned())
            }
            _ if image.git_context.is_some() => DockerfileSource::InContext(
                image
                    .dockerfile
                    .clone()
                    .unwrap_or_else(|| "Dockerfile".into()),
            ),
            _ => DockerfileSource::Path(request.dockerfile.clone()),
        };
        let mut platforms = Vec::new();
        for p in &image.platforms {
            platforms.push(
                Platform::parse(p)
                    .map_err(|e| format!("images.{}.platforms: {p}: {e}", image.name))?,
            );
        }
        let mut secrets = Secrets::new();
        for (k, v) in &request.secrets {
            secrets.insert(
                k.clone(),
                SecretSource::Value(v.expose().as_bytes().to_vec()),
            );
        }
        // Progress arrives on builder threads; lines go through a queue to the step's log.
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        let steps: Arc<Mutex<BTreeMap<usize, String>>> = Arc::default();
        let progress = Progress::new(move |e| {
            let line = match e {
                Event::Message(m) => Some(m.clone()),
                Event::Started(s) => {
                    steps
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(s.id, s.name.clone());
                    Some(s.name.clone())
                }
                Event::Cached(s) => Some(format!("{} (cached)", s.name)),
                Event::Done(s, d) => Some(format!("{} done in {:.1}s", s.name, d.as_secs_f64())),
                Event::Failed(s, d) => {
                    Some(format!("{} failed after {:.1}s", s.name, d.as_secs_f64()))
                }
                Event::Log { data, .. } => {
                    let text = String::from_utf8_lossy(data);
                    let mut out = sink.lock().unwrap_or_else(|p| p.into_inner());
                    for l in text.lines() {
                        out.push(format!("  {l}"));
                    }
                    None
                }
                Event::Warning(w) => Some(format!("warning: {w}")),
            };
            if let Some(l) = line {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(l);
            }
        });
        let cancel = drydock_builder::Cancel::new();
        let c2 = cancel.clone();
        let _guard = request.cancel.on_cancel(move || c2.cancel());
        let req = Req {
            context,
            dockerfile,
            target: image.target.clone(),
            build_args: request.args.iter().cloned().collect(),
            platforms,
            tags: request.names.clone(),
            labels: request.labels.clone(),
            secrets,
            source_date_epoch: request.epoch,
            progress,
            cancel,
            ..Req::default()
        };
        // Build on a helper thread so progress lines reach the log while it runs.
        let log = request.log;
        let result = std::thread::scope(|s| {
            let handle = s.spawn(|| Builder::build(self, req));
            loop {
                let done = handle.is_finished();
                let batch: Vec<String> =
                    std::mem::take(&mut *lines.lock().unwrap_or_else(|p| p.into_inner()));
                for l in batch {
                    log(&l);
                }
                if done {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            handle.join()
        });
        let out = match result {
            Ok(r) => r.map_err(|e| e.to_string())?,
            Err(_) => return Err("the builder panicked".to_string()),
        };
        for w in &out.warnings {
            log(&format!("warning: {w}"));
        }
        Ok(BuiltImage {
            descriptor: out.descriptor,
            cached: out.stats.executed == 0,
        })
    }
}
