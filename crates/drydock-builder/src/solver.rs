//! The solver: executes a plan's ops into states.
//!
//! 1. Keys: every op gets a cache key, in plan order: sha256 of its digest, its inputs' keys
//!    and, for sources, the content digest of what they provide (context files hashed, a
//!    download's bytes, a git commit). Layer-producing keys also cover the compression.
//! 2. Demand: from the ops the image needs (the root and each history step's op), each op is
//!    either known (a source, a base image, a cache record) or pending; a pending op needs its
//!    inputs, recursively. Only pending ops run: a warm build extracts and runs nothing.
//! 3. Run: pending ops go to a bounded worker pool as their inputs finish, so independent
//!    stages run in parallel; each op runs once however often the plan reaches it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, RwLock};
use std::time::Instant;

use drydock_content::Store;
use drydock_layer::{CompressOptions, DiffOptions, LayerWriter, TarOptions};
use drydock_oci::{Algorithm, Digest};
use drydock_plan::{ExecOp, FileAction, FileOp, MountKind, Op, OpId, Plan};

use crate::cache::{BuildCache, Record};
use crate::chain::{Chain, LayerRef};
use crate::context::{Context, ContextTree, content_digest};
use crate::error::{BuildError, IoCtx, SourceText, StepFailure};
use crate::exec::{self, ExecEnv, MountSource};
use crate::fileop::{Source, Staging};
use crate::hashcache::HashCache;
use crate::progress::{Event, Progress, StepInfo};
use crate::request::BuildRequest;
use crate::snapshots::{Snapshots, remove_tree};
use crate::view::{self, Escape, LayerStack, Tree};

/// A file-system state.
#[derive(Debug, Clone)]
pub enum State {
    /// Layers in the content store.
    Layers(Chain),
    /// A directory on the host: the build context (with its ignore patterns), a download, a
    /// git checkout.
    Dir {
        root: PathBuf,
        exclude: Vec<String>,
        context: bool,
    },
}

/// A COPY source prepared for a file op: (op, tree, escape rule, reset owners, name).
type SourceEntry = (OpId, Box<dyn Tree>, Escape, bool, String);

/// What the solver works with.
pub struct Env<'a> {
    pub store: &'a Store,
    pub cache: &'a BuildCache,
    pub snapshots: &'a Snapshots,
    pub hashes: &'a HashCache,
    pub context: &'a Context,
    pub req: &'a BuildRequest,
    pub epoch: i64,
    pub sandbox_dir: PathBuf,
    pub init_binary: Option<PathBuf>,
    /// Base images by manifest digest: their layers.
    pub images: &'a HashMap<Digest, Chain>,
    pub source: Option<&'a SourceText>,
    /// How many stages (FROM instructions) the Dockerfile has, used or not: BuildKit names the
    /// stage in step names (`[build 2/4]`) only when there are several (`[2/5]` else).
    pub stage_count: usize,
    pub rootless: bool,
    pub progress: Progress,
    /// Step numbering shared by the platforms of one build.
    pub step_ids: &'a Mutex<HashMap<OpId, usize>>,
}

/// The result of solving.
#[derive(Debug)]
pub struct Solved {
    pub states: HashMap<OpId, State>,
    pub cached: usize,
    pub executed: usize,
}

fn key_of(parts: &[&[u8]]) -> Digest {
    let mut h = Algorithm::Sha256.hasher();
    h.update(b"drydock-cache-key v1\n");
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finish()
}

struct Solver<'a, 'e> {
    plan: &'a Plan,
    env: &'a Env<'e>,
    keys: HashMap<OpId, Digest>,
    states: RwLock<HashMap<OpId, State>>,
    /// Temporary directories that must live as long as the build (downloads, checkouts,
    /// materialised mounts).
    temps: Mutex<Vec<tempfile::TempDir>>,
    empty_dir: PathBuf,
    cached: Mutex<usize>,
    executed: Mutex<usize>,
    /// Cancelled by the caller's token, or by the first failure (stops the other steps).
    cancel: crate::progress::Cancel,
}

pub fn solve(plan: &Plan, env: &Env<'_>, needed: &[OpId]) -> Result<Solved, BuildError> {
    let tmp = env.cache.tmp_dir();
    fs::create_dir_all(&tmp).ctx("create directory", &tmp)?;
    let empty_dir = tmp.join("empty-root");
    fs::create_dir_all(&empty_dir).ctx("create directory", &empty_dir)?;
    let mut s = Solver {
        plan,
        env,
        keys: HashMap::new(),
        states: RwLock::new(HashMap::new()),
        temps: Mutex::new(Vec::new()),
        empty_dir,
        cached: Mutex::new(0),
        executed: Mutex::new(0),
        cancel: env.req.cancel.child(),
    };
    s.compute_keys()?;
    let pending = s.demand(needed)?;
    s.run_pending(pending)?;
    let states = s.states.into_inner().map_err(|_| poisoned())?;
    Ok(Solved {
        states,
        cached: s.cached.into_inner().map_err(|_| poisoned())?,
        executed: s.executed.into_inner().map_err(|_| poisoned())?,
    })
}

fn poisoned() -> BuildError {
    BuildError::Cache("a build worker panicked".into())
}

impl Solver<'_, '_> {
    fn op(&self, id: &OpId) -> Result<&Op, BuildError> {
        self.plan
            .get(id)
            .ok_or_else(|| BuildError::Cache(format!("the plan has no op {id}")))
    }

    fn set_state(&self, id: &OpId, st: State) {
        if let Ok(mut m) = self.states.write() {
            m.insert(id.clone(), st);
        }
    }

    fn state(&self, id: &OpId) -> Result<State, BuildError> {
        self.states
            .read()
            .map_err(|_| poisoned())?
            .get(id)
            .cloned()
            .ok_or_else(|| BuildError::Cache(format!("internal: op {id} has no state yet")))
    }

    fn layers_of(&self, id: &OpId) -> Result<Chain, BuildError> {
        match self.state(id)? {
            State::Layers(c) => Ok(c),
            State::Dir { .. } => Err(BuildError::Unsupported(
                "a context or download used as a root file system".into(),
            )),
        }
    }

    fn temp_dir(&self, prefix: &str) -> Result<PathBuf, BuildError> {
        let tmp = self.env.cache.tmp_dir();
        let t = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&tmp)
            .ctx("create temporary directory in", &tmp)?;
        let p = t.path().to_path_buf();
        self.temps.lock().map_err(|_| poisoned())?.push(t);
        Ok(p)
    }

    // ---- 1. keys -------------------------------------------------------------------------

    fn compute_keys(&mut self) -> Result<(), BuildError> {
        let compression = format!(
            "{:?} level {}",
            self.env.req.compression,
            self.compression_level()
        );
        for node in &self.plan.ops {
            let id_s = node.id.to_string();
            let key = match &node.op {
                Op::Scratch => {
                    self.set_state(&node.id, State::Layers(Vec::new()));
                    key_of(&[id_s.as_bytes()])
                }
                Op::Image(img) => {
                    let chain = self.env.images.get(&img.digest).cloned().ok_or_else(|| {
                        BuildError::Cache(format!(
                            "internal: base image {}@{} was not resolved",
                            img.reference, img.digest
                        ))
                    })?;
                    self.set_state(&node.id, State::Layers(chain));
                    key_of(&[id_s.as_bytes()])
                }
                Op::Local(l) => {
                    if l.name != "context" {
                        return Err(BuildError::Unsupported(format!(
                            "named build context {:?}",
                            l.name
                        )));
                    }
                    let tree = ContextTree::new(self.env.context.dir.clone(), &l.exclude_patterns);
                    let content = content_digest(&tree, &l.follow_paths, self.env.hashes).map_err(
                        |e| match e {
                            // Point at the instruction that reads the context.
                            BuildError::Context { message, .. } => {
                                self.failure(&node.id, None, message, Vec::new(), None)
                            }
                            other => other,
                        },
                    )?;
                    self.set_state(
                        &node.id,
                        State::Dir {
                            root: self.env.context.dir.clone(),
                            exclude: l.exclude_patterns.clone(),
                            context: true,
                        },
                    );
                    key_of(&[id_s.as_bytes(), content.to_string().as_bytes()])
                }
                Op::Http(h) => {
                    let dir = self.temp_dir("http-")?;
                    self.env.progress.message(format!("downloading {}", h.url));
                    let content = crate::remote::download(h, &dir, self.env.epoch)?;
                    self.set_state(
                        &node.id,
                        State::Dir {
                            root: dir,
                            exclude: Vec::new(),
                            context: false,
                        },
                    );
                    key_of(&[id_s.as_bytes(), content.to_string().as_bytes()])
                }
                Op::Git(g) => {
                    let dir = self.temp_dir("git-")?;
                    self.env.progress.message(format!("cloning {}", g.remote));
                    let (root, commit) = crate::remote::checkout(g, &dir)?;
                    self.set_state(
                        &node.id,
                        State::Dir {
                            root,
                            exclude: Vec::new(),
                            context: false,
                        },
                    );
                    key_of(&[id_s.as_bytes(), commit.as_bytes()])
                }
                op => {
                    let mut parts: Vec<Vec<u8>> = vec![id_s.clone().into_bytes()];
                    let extra = self.extra_inputs(&node.id, op);
                    for i in op.inputs().into_iter().chain(extra.iter()) {
                        let k = self.keys.get(i).ok_or_else(|| {
                            BuildError::Cache(format!("internal: input {i} has no key"))
                        })?;
                        parts.push(k.to_string().into_bytes());
                    }
                    parts.push(compression.clone().into_bytes());
                    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                    key_of(&refs)
                }
            };
            self.keys.insert(node.id.clone(), key);
        }
        Ok(())
    }

    // ---- 2. demand -----------------------------------------------------------------------

    fn use_cache(&self, id: &OpId) -> bool {
        if self.env.req.no_cache {
            return false;
        }
        if self.env.req.no_cache_filter.is_empty() {
            return true;
        }
        let stages: Vec<&str> = self
            .plan
            .source_map
            .get(id)
            .map(|locs| locs.iter().map(|l| l.stage.as_str()).collect())
            .unwrap_or_default();
        !stages.iter().any(|s| {
            self.env
                .req
                .no_cache_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(s))
        })
    }

    /// Returns the ops to run, in plan order.
    fn demand(&self, needed: &[OpId]) -> Result<Vec<OpId>, BuildError> {
        let mut known: HashSet<OpId> = self
            .states
            .read()
            .map_err(|_| poisoned())?
            .keys()
            .cloned()
            .collect();
        let mut pending: HashSet<OpId> = HashSet::new();
        let mut visited: HashSet<OpId> = HashSet::new();
        let mut stack: Vec<OpId> = needed.to_vec();
        let mut hits: Vec<OpId> = Vec::new();
        while let Some(id) = stack.pop() {
            if !visited.insert(id.clone()) || known.contains(&id) {
                continue;
            }
            let op = self.op(&id)?;
            if matches!(op, Op::Exec(_) | Op::File(_)) && self.use_cache(&id) {
                let key = &self.keys[&id];
                if let Some(rec) = self.env.cache.get(key, self.env.store) {
                    self.set_state(&id, State::Layers(rec.layers));
                    known.insert(id.clone());
                    hits.push(id.clone());
                    continue;
                }
            }
            pending.insert(id.clone());
            stack.extend(op.inputs().into_iter().cloned());
            stack.extend(self.extra_inputs(&id, op));
        }
        // Report cache hits in plan order.
        for n in &self.plan.ops {
            if hits.contains(&n.id)
                && let Some(info) = self.step_info(&n.id)
            {
                *self.cached.lock().map_err(|_| poisoned())? += 1;
                self.env.progress.emit(&Event::Cached(info));
            }
        }
        Ok(self
            .plan
            .ops
            .iter()
            .filter(|n| pending.contains(&n.id))
            .map(|n| n.id.clone())
            .collect())
    }

    // ---- 3. run --------------------------------------------------------------------------

    fn run_pending(&self, pending: Vec<OpId>) -> Result<(), BuildError> {
        if pending.is_empty() {
            return Ok(());
        }
        let set: HashSet<&OpId> = pending.iter().collect();
        let mut waiting: HashMap<OpId, usize> = HashMap::new();
        let mut dependents: HashMap<OpId, Vec<OpId>> = HashMap::new();
        let mut ready: VecDeque<OpId> = VecDeque::new();
        for id in &pending {
            let op = self.op(id)?;
            let extra = self.extra_inputs(id, op);
            let mut inputs: Vec<&OpId> = op.inputs();
            inputs.extend(extra.iter());
            inputs.sort();
            inputs.dedup();
            let deps: Vec<&OpId> = inputs.into_iter().filter(|i| set.contains(i)).collect();
            for d in &deps {
                dependents.entry((*d).clone()).or_default().push(id.clone());
            }
            if deps.is_empty() {
                ready.push_back(id.clone());
            } else {
                waiting.insert(id.clone(), deps.len());
            }
        }
        struct Sched {
            ready: VecDeque<OpId>,
            waiting: HashMap<OpId, usize>,
            running: usize,
            left: usize,
            error: Option<BuildError>,
        }
        let sched = Mutex::new(Sched {
            ready,
            waiting,
            running: 0,
            left: pending.len(),
            error: None,
        });
        let cv = Condvar::new();
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 8)
            .min(pending.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let id = {
                            let Ok(mut s) = sched.lock() else { return };
                            loop {
                                if s.error.is_some() || s.left == 0 {
                                    return;
                                }
                                if let Some(id) = s.ready.pop_front() {
                                    s.running += 1;
                                    break id;
                                }
                                if s.running == 0 {
                                    // Nothing runs and nothing is ready: a cycle (cannot
                                    // happen with a valid plan).
                                    s.error = Some(BuildError::Cache(
                                        "internal: the plan's remaining ops wait on each other"
                                            .into(),
                                    ));
                                    cv.notify_all();
                                    return;
                                }
                                s = match cv.wait(s) {
                                    Ok(s) => s,
                                    Err(_) => return,
                                };
                            }
                        };
                        let result = if self.cancel.is_cancelled() {
                            Err(BuildError::Cancelled)
                        } else {
                            self.execute(&id)
                        };
                        let Ok(mut s) = sched.lock() else { return };
                        s.running -= 1;
                        match result {
                            Ok(()) => {
                                s.left -= 1;
                                for d in dependents.get(&id).into_iter().flatten() {
                                    if let Some(n) = s.waiting.get_mut(d) {
                                        *n -= 1;
                                        if *n == 0 {
                                            s.waiting.remove(d);
                                            s.ready.push_back(d.clone());
                                        }
                                    }
                                }
                            }
                            Err(e) => {
                                if s.error.is_none() {
                                    s.error = Some(e);
                                    // Stop the other running steps.
                                    self.cancel.cancel();
                                }
                            }
                        }
                        cv.notify_all();
                    }
                });
            }
        });
        let mut s = sched.into_inner().map_err(|_| poisoned())?;
        match s.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn step_info(&self, id: &OpId) -> Option<StepInfo> {
        let locs = self.plan.source_map.get(id)?;
        let loc = locs.first()?;
        let op = self.plan.get(id)?;
        if matches!(
            op,
            Op::Local(_) | Op::Image(_) | Op::Scratch | Op::Http(_) | Op::Git(_)
        ) {
            return None;
        }
        let text = self
            .env
            .source
            .and_then(|s| s.text.get(loc.start..loc.end))
            .map(|t| {
                let first = t.lines().next().unwrap_or("").trim();
                let mut s: String = first.chars().take(100).collect();
                if first.chars().count() > 100 || t.lines().count() > 1 {
                    s.push_str(" ...");
                }
                s
            })
            .unwrap_or_else(|| op.kind().to_string());
        let mut ids = self.env.step_ids.lock().ok()?;
        let n = ids.len() + 1;
        let sid = *ids.entry(id.clone()).or_insert(n);
        let stage = if self.env.stage_count < 2 {
            String::new()
        } else if loc.stage.bytes().all(|b| b.is_ascii_digit()) {
            format!("stage-{} ", loc.stage)
        } else {
            format!("{} ", loc.stage)
        };
        // BuildKit's `[stage 2/5]`: the instruction's place among the stage's FROM and steps.
        let mut starts: Vec<usize> = self
            .plan
            .source_map
            .iter()
            .filter(|(oid, _)| {
                matches!(
                    self.plan.get(oid),
                    Some(Op::Exec(_) | Op::File(_) | Op::Merge(_) | Op::Image(_) | Op::Scratch)
                )
            })
            .flat_map(|(_, ls)| ls.iter())
            .filter(|l| l.stage == loc.stage)
            .map(|l| l.start)
            .collect();
        starts.sort_unstable();
        starts.dedup();
        let pos = starts
            .iter()
            .position(|s| *s == loc.start)
            .map_or(0, |p| p + 1);
        Some(StepInfo {
            id: sid,
            name: format!("[{stage}{pos}/{}] {text}", starts.len()),
            stage: Some(loc.stage.clone()),
        })
    }

    fn execute(&self, id: &OpId) -> Result<(), BuildError> {
        let op = self.op(id)?;
        let info = self.step_info(id);
        let started = Instant::now();
        if let Some(i) = &info {
            self.env.progress.emit(&Event::Started(i.clone()));
        }
        let result = match op {
            Op::Exec(e) => self.run_exec(id, e, info.as_ref()),
            Op::File(f) => self.run_file(id, f, info.as_ref()),
            Op::Merge(m) => {
                let mut chain = Vec::new();
                for i in &m.inputs {
                    chain.extend(self.layers_of(i)?);
                }
                self.set_state(id, State::Layers(chain));
                Ok(())
            }
            Op::Diff(d) => {
                let lower = self.layers_of(&d.lower)?;
                let upper = self.layers_of(&d.upper)?;
                if upper.len() < lower.len() || upper[..lower.len()] != lower[..] {
                    return Err(BuildError::Unsupported(
                        "a diff whose upper state does not extend its lower state".into(),
                    ));
                }
                self.set_state(id, State::Layers(upper[lower.len()..].to_vec()));
                Ok(())
            }
            other => Err(BuildError::Cache(format!(
                "internal: {} op {id} has no state",
                other.kind()
            ))),
        };
        if let Some(i) = info {
            let d = started.elapsed();
            match &result {
                Ok(()) => {
                    *self.executed.lock().map_err(|_| poisoned())? += 1;
                    self.env.progress.emit(&Event::Done(i, d));
                }
                Err(_) => self.env.progress.emit(&Event::Failed(i, d)),
            }
        }
        result
    }

    fn failure(
        &self,
        id: &OpId,
        info: Option<&StepInfo>,
        message: String,
        tail: Vec<String>,
        exit_code: Option<i32>,
    ) -> BuildError {
        let loc = self.plan.source_map.get(id).and_then(|l| l.first());
        let text = loc.and_then(|l| {
            self.env
                .source
                .and_then(|s| s.text.get(l.start..l.end))
                .map(|t| t.lines().next().unwrap_or("").trim().to_string())
        });
        let step = info
            .map(|i| i.name.clone())
            .or(text)
            .unwrap_or_else(|| self.plan.get(id).map_or("step", |o| o.kind()).to_string());
        let diagnostic = loc.map(|l| {
            let mut d = crate::error::step_diagnostic(&message, l.start, l.end);
            if let Some(code) = exit_code {
                d = d.with_code(format!("exit-{code}"));
            }
            d
        });
        BuildError::Step(
            Box::new(StepFailure {
                step,
                message,
                diagnostic,
                output_tail: tail,
                exit_code,
            }),
            self.env.source.cloned(),
        )
    }

    fn record(&self, id: &OpId, chain: &Chain) -> Result<(), BuildError> {
        let description = self
            .step_info(id)
            .map(|i| i.name)
            .unwrap_or_else(|| self.plan.get(id).map_or("", |o| o.kind()).to_string());
        self.env.cache.put(
            &self.keys[id],
            &Record {
                layers: chain.clone(),
                description,
            },
        )
    }

    /// A host directory for a mount input (`selector` inside it). Snapshots and directories
    /// are used in place when read-only and a single directory; otherwise a merged copy is
    /// made (hard links for read-only mounts).
    fn mount_dir(
        &self,
        input: &OpId,
        selector: &str,
        writable: bool,
    ) -> Result<PathBuf, BuildError> {
        let state = self.state(input)?;
        let (stack, escape): (Box<dyn Tree>, Escape) = match &state {
            State::Dir {
                root,
                exclude,
                context,
            } => {
                if *context {
                    (
                        Box::new(ContextTree::new(root.clone(), exclude)),
                        Escape::Refuse,
                    )
                } else {
                    (Box::new(LayerStack::plain(root.clone())), Escape::Clamp)
                }
            }
            State::Layers(chain) => {
                if chain.is_empty() {
                    return Ok(self.empty_dir.clone());
                }
                let mut dirs = self.env.snapshots.ensure_chain(chain)?;
                dirs.reverse();
                (Box::new(LayerStack::new(dirs)), Escape::Clamp)
            }
        };
        let rel = view::resolve(stack.as_ref(), selector, true, escape).map_err(|e| {
            BuildError::Context {
                path: selector.to_string(),
                message: e.to_string(),
            }
        })?;
        let found = stack.lookup(&rel).map_err(|e| BuildError::Context {
            path: selector.to_string(),
            message: e.to_string(),
        })?;
        let Some(found) = found else {
            return Err(BuildError::Context {
                path: selector.to_string(),
                message: "mount source not found".into(),
            });
        };
        let single = match &state {
            State::Dir { exclude, .. } => exclude.is_empty(),
            State::Layers(chain) => chain.len() == 1,
        };
        if single && !writable {
            return Ok(found.abs);
        }
        let dest = self.temp_dir("mount-")?.join("m");
        materialize(stack.as_ref(), &rel, &dest, !writable)?;
        Ok(dest)
    }

    fn run_exec(&self, id: &OpId, e: &ExecOp, info: Option<&StepInfo>) -> Result<(), BuildError> {
        let parent = self.layers_of(&e.root)?;
        let lowers = if parent.is_empty() {
            vec![self.empty_dir.clone()]
        } else {
            self.env.snapshots.ensure_chain(&parent)?
        };
        let mut sources = Vec::new();
        for m in &e.mounts {
            sources.push(match &m.kind {
                MountKind::Bind {
                    input: Some(i),
                    selector,
                    readonly,
                } => Some(MountSource {
                    dir: self.mount_dir(i, selector, !readonly)?,
                }),
                MountKind::Bind { input: None, .. } => Some(MountSource {
                    dir: self.empty_dir.clone(),
                }),
                MountKind::Cache {
                    base: Some(b),
                    selector,
                    ..
                } => Some(MountSource {
                    dir: self.mount_dir(b, selector, false)?,
                }),
                _ => None,
            });
        }
        let env = ExecEnv {
            state_dir: self.env.sandbox_dir.clone(),
            mounts_dir: self.env.cache.mounts_dir(),
            secrets: &self.env.req.secrets,
            ssh: &self.env.req.ssh,
            allow_insecure: self.env.req.allow_insecure,
            progress: self.env.progress.clone(),
            step: info.map_or(0, |i| i.id),
            cancel: self.cancel.sandbox_token(),
            init_binary: self.env.init_binary.clone(),
        };
        let changes = match exec::run(e, lowers, &sources, &env)? {
            Ok(c) => c,
            Err(f) => return Err(self.failure(id, info, f.message, f.tail, f.exit_code)),
        };
        if changes.is_overlay() {
            self.mount_points(e, &sources, &changes);
        }
        let (layer, stats) = if changes.is_overlay() {
            let topmost: Vec<PathBuf> = changes
                .lowers()
                .iter()
                .rev()
                .filter(|l| **l != self.empty_dir)
                .cloned()
                .collect();
            self.write_layer(|out, opts| {
                drydock_layer::diff_overlay_upper(changes.upper(), &topmost, out, opts)
            })?
        } else {
            let base = changes.base().map(Path::to_path_buf).unwrap_or_default();
            self.write_layer(|out, opts| {
                drydock_layer::diff_trees(&base, changes.upper(), out, opts)
            })?
        };
        if changes.is_overlay() {
            let upper = changes.upper().to_path_buf();
            let exact = upper_is_exactly(&upper, &stats);
            let run_dir = changes.keep();
            if exact {
                self.env.snapshots.adopt(&layer.digest, &upper);
            }
            let _ = remove_tree(&run_dir);
        }
        let mut chain = parent;
        chain.push(layer);
        self.record(id, &chain)?;
        self.set_state(id, State::Layers(chain));
        Ok(())
    }

    fn run_file(&self, id: &OpId, f: &FileOp, info: Option<&StepInfo>) -> Result<(), BuildError> {
        let parent = match &f.base {
            Some(b) => self.layers_of(b)?,
            None => Vec::new(),
        };
        let mut lowers = self.env.snapshots.ensure_chain(&parent)?;
        lowers.reverse();
        if lowers.is_empty() {
            lowers.push(self.empty_dir.clone());
        }
        // Source trees, owned here so the staging area can borrow them.
        let mut trees: Vec<SourceEntry> = Vec::new();
        for a in &f.actions {
            let FileAction::Copy(c) = a else { continue };
            if trees.iter().any(|(i, ..)| *i == c.source) {
                continue;
            }
            let what = self
                .plan
                .source_map
                .get(&c.source)
                .and_then(|l| l.first())
                .map(|l| format!("stage {}", l.stage))
                .unwrap_or_else(|| "the source".into());
            let entry: (Box<dyn Tree>, Escape, bool, String) = match self.state(&c.source)? {
                State::Dir {
                    root,
                    exclude,
                    context: true,
                } => (
                    Box::new(ContextTree::new(root, &exclude)),
                    Escape::Refuse,
                    true,
                    "the build context".into(),
                ),
                State::Dir { root, .. } => (
                    Box::new(LayerStack::plain(root)),
                    Escape::Clamp,
                    false,
                    "the download".into(),
                ),
                State::Layers(chain) => {
                    let mut dirs = self.env.snapshots.ensure_chain(&chain)?;
                    dirs.reverse();
                    if dirs.is_empty() {
                        dirs.push(self.empty_dir.clone());
                    }
                    (Box::new(LayerStack::new(dirs)), Escape::Clamp, false, what)
                }
            };
            trees.push((c.source.clone(), entry.0, entry.1, entry.2, entry.3));
        }
        let sources: HashMap<OpId, Source<'_>> = trees
            .iter()
            .map(|(i, t, esc, reset, what)| {
                (
                    i.clone(),
                    Source {
                        tree: t.as_ref(),
                        escape: *esc,
                        reset_owner: *reset,
                        what: what.clone(),
                    },
                )
            })
            .collect();
        let stage_dir = self.temp_dir("stage-")?;
        let upper = stage_dir.join("upper");
        fs::create_dir(&upper).ctx("create directory", &upper)?;
        let mut staging = Staging::new(upper.clone(), lowers.clone())
            .with_userxattr(self.env.rootless)
            .with_file_pool(self.env.cache.files_dir());
        if f.base.is_none()
            && let Some(linked_onto) = self.linked_onto(id)
            && let State::Layers(chain) = self.state(&linked_onto)?
            && !chain.is_empty()
        {
            let mut dirs = self.env.snapshots.ensure_chain(&chain)?;
            dirs.reverse();
            staging = staging.with_user_db(dirs);
        }
        for a in &f.actions {
            if let Err(e) = staging.run(a, &sources) {
                return Err(self.failure(id, info, e.0, Vec::new(), None));
            }
        }
        drop(sources);
        drop(trees);
        let real_lowers: Vec<PathBuf> = lowers
            .into_iter()
            .filter(|l| *l != self.empty_dir)
            .collect();
        let (layer, stats) = self.write_layer(|out, opts| {
            drydock_layer::diff_overlay_upper(&upper, &real_lowers, out, opts)
        })?;
        if upper_is_exactly(&upper, &stats) {
            self.env.snapshots.adopt(&layer.digest, &upper);
        }
        let mut chain = parent;
        chain.push(layer);
        self.record(id, &chain)?;
        self.set_state(id, State::Layers(chain));
        Ok(())
    }

    /// Inputs an op reads besides `Op::inputs`: a `COPY --link --chown=NAME` looks the name up
    /// in the state it is linked onto.
    fn extra_inputs(&self, id: &OpId, op: &Op) -> Vec<OpId> {
        let Op::File(f) = op else { return Vec::new() };
        let names = f.actions.iter().any(|a| match a {
            FileAction::Copy(c) => c.owner.as_ref().is_some_and(|o| {
                let named = |s: &str| !s.is_empty() && !s.bytes().all(|b| b.is_ascii_digit());
                named(&o.user) || o.group.as_deref().is_some_and(named)
            }),
            _ => false,
        });
        if f.base.is_none() && names {
            self.linked_onto(id).into_iter().collect()
        } else {
            Vec::new()
        }
    }

    /// For a file op on an empty file system merged onto a state (`COPY --link`): that state.
    fn linked_onto(&self, id: &OpId) -> Option<OpId> {
        self.plan.ops.iter().find_map(|n| match &n.op {
            Op::Merge(m) if m.inputs.iter().skip(1).any(|i| i == id) => m.inputs.first().cloned(),
            _ => None,
        })
    }

    /// Recreates the mount points of a RUN in its upper dir, as BuildKit leaves them in the
    /// layer: directories for directory mounts, parents for file mounts (secrets, ssh sockets,
    /// single-file binds). Best effort.
    fn mount_points(
        &self,
        e: &ExecOp,
        sources: &[Option<MountSource>],
        changes: &drydock_sandbox::Changes,
    ) {
        let topmost: Vec<PathBuf> = changes
            .lowers()
            .iter()
            .rev()
            .filter(|l| **l != self.empty_dir)
            .cloned()
            .collect();
        let staging =
            Staging::new(changes.upper().to_path_buf(), topmost).with_userxattr(self.env.rootless);
        for (m, src) in e.mounts.iter().zip(sources) {
            let Some(t) = &m.target else { continue };
            let t = t.trim_end_matches('/');
            if t.is_empty()
                || ["/dev", "/proc", "/sys"]
                    .iter()
                    .any(|p| t == *p || t.starts_with(&format!("{p}/")))
            {
                continue;
            }
            let file_like = match &m.kind {
                MountKind::Secret { .. } | MountKind::Ssh { .. } => true,
                MountKind::Bind { .. } => src.as_ref().is_some_and(|s| !s.dir.is_dir()),
                _ => false,
            };
            let dir = if file_like {
                match t.rsplit_once('/') {
                    Some((p, _)) if !p.is_empty() => p.to_string(),
                    _ => continue,
                }
            } else {
                t.to_string()
            };
            let _ = staging.mkdir_all(&dir, None);
        }
    }

    fn compression_level(&self) -> i32 {
        match (self.env.req.compression_level, self.env.req.compression) {
            (Some(l), _) => l,
            (None, drydock_oci::media_type::Compression::Zstd) => 3,
            (None, _) => 1,
        }
    }

    /// Writes a layer blob from a tar producer, compressed as the request asks.
    fn write_layer(
        &self,
        produce: impl FnOnce(
            &mut LayerWriter<drydock_content::BlobWriter>,
            &DiffOptions,
        ) -> Result<drydock_layer::TarStats, drydock_layer::LayerError>,
    ) -> Result<(LayerRef, drydock_layer::TarStats), BuildError> {
        let compression = self.env.req.compression;
        let bw = self.env.store.writer()?;
        let copts = CompressOptions {
            level: Some(self.compression_level()),
            ..Default::default()
        };
        let mut lw = LayerWriter::over_digesting_sink(bw, compression, &copts)
            .map_err(|e| BuildError::io("compress layer into", self.env.store.root(), e))?;
        let opts = DiffOptions {
            tar: TarOptions::with_epoch(self.env.epoch),
            compare_mtime: false,
        };
        let stats = produce(&mut lw, &opts)?;
        let (digests, bw) = lw
            .finish()
            .map_err(|e| BuildError::io("finish layer in", self.env.store.root(), e))?;
        let (digest, size) = bw.commit()?;
        debug_assert_eq!(digest, digests.digest);
        Ok((
            LayerRef {
                digest,
                diff_id: digests.diff_id,
                size,
                media_type: drydock_oci::media_type::oci_layer(compression).to_string(),
            },
            stats,
        ))
    }
}

/// Whether an upper dir holds exactly what its layer tar holds (every entry written, nothing
/// left out as an unchanged copy-up): only then may it serve as the snapshot of that layer,
/// which other chains with other parents may share. Opaque directories add a marker entry.
fn upper_is_exactly(upper: &Path, stats: &drydock_layer::TarStats) -> bool {
    fn count(dir: &Path, nodes: &mut u64, opaque: &mut u64) -> bool {
        let Ok(rd) = fs::read_dir(dir) else {
            return false;
        };
        for e in rd.flatten() {
            *nodes += 1;
            let Ok(ft) = e.file_type() else { return false };
            if ft.is_dir() {
                if view::is_opaque(&e.path()) {
                    *opaque += 1;
                }
                if !count(&e.path(), nodes, opaque) {
                    return false;
                }
            }
        }
        true
    }
    let (mut nodes, mut opaque) = (0, 0);
    count(upper, &mut nodes, &mut opaque) && stats.entries == nodes + opaque && stats.skipped == 0
}

/// Copies the tree at `rel` of `view` into `dest` (a new directory): hard links for files when
/// `link` (read-only use), copies otherwise.
pub fn materialize(view: &dyn Tree, rel: &Path, dest: &Path, link: bool) -> Result<(), BuildError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let err = |e: view::ViewError| BuildError::Context {
        path: rel.display().to_string(),
        message: e.to_string(),
    };
    let Some(top) = view.lookup(rel).map_err(err)? else {
        return Ok(());
    };
    if !top.is_dir() {
        if link && fs::hard_link(&top.abs, dest).is_ok() {
            return Ok(());
        }
        fs::copy(&top.abs, dest).ctx("copy to", dest)?;
        return Ok(());
    }
    fs::create_dir_all(dest).ctx("create directory", dest)?;
    fs::set_permissions(dest, fs::Permissions::from_mode(top.meta.mode() & 0o7777))
        .ctx("chmod", dest)?;
    for n in view.read_dir(rel).map_err(err)?.unwrap_or_default() {
        let child = rel.join(&n);
        let to = dest.join(&n);
        let Some(f) = view.lookup(&child).map_err(err)? else {
            continue;
        };
        if f.is_dir() {
            materialize(view, &child, &to, link)?;
        } else if f.is_symlink() {
            let t = fs::read_link(&f.abs).ctx("read link", &f.abs)?;
            std::os::unix::fs::symlink(&t, &to).ctx("symlink", &to)?;
        } else if f.meta.is_file() && !(link && fs::hard_link(&f.abs, &to).is_ok()) {
            fs::copy(&f.abs, &to).ctx("copy to", &to)?;
        }
        if rustix::process::geteuid().is_root() {
            let _ = rustix::fs::chownat(
                rustix::fs::CWD,
                &to,
                Some(rustix::fs::Uid::from_raw(f.meta.uid())),
                Some(rustix::fs::Gid::from_raw(f.meta.gid())),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            );
        }
    }
    Ok(())
}
