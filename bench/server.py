"""The measurements of bench/server.sh (see there). Talks only to 127.0.0.1."""
import hashlib, hmac, json, os, shutil, socket, sqlite3, subprocess, sys, tempfile, threading, time
import http.client, urllib.request

BIN = os.environ["DRYDOCK_BIN"]
LATENCY_N = int(os.environ.get("LATENCY_N", "200"))
DELIVERIES = int(os.environ.get("DELIVERIES", "2000"))
SECRET = "bench-secret"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def git(d, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x.invalid", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@x.invalid")
    return subprocess.run(["git", "-C", d, *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


class Server:
    def __init__(self, data, port):
        self.data, self.port = data, port
        self.log = open(data + ".log", "ab")
        self.p = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data", data, "--jobs", "2"],
                                  env=dict(os.environ, DRYDOCK_HOME=data, RUST_LOG="warn"), stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                if os.path.exists(os.path.join(data, "admin-token")):
                    break
            except OSError:
                pass
            time.sleep(0.05)
        self.token = open(os.path.join(data, "admin-token")).read().strip()

    def rss_mb(self):
        for l in open(f"/proc/{self.p.pid}/status"):
            if l.startswith("VmRSS"):
                return int(l.split()[1]) / 1024

    def req(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = {"Authorization": f"Bearer {self.token}"}
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse(); data = r.read(); c.close()
        return r.status, data

    def api(self, method, path, obj=None):
        st, data = self.req(method, path, json.dumps(obj).encode() if obj is not None else None, {"Content-Type": "application/json"})
        return st, json.loads(data or b"null")

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()


def delivery(sha, i, clone):
    body = json.dumps({"ref": "refs/heads/main", "before": "0" * 40, "after": sha, "deleted": False,
                       "repository": {"full_name": "bench/app", "clone_url": clone, "default_branch": "main"},
                       "sender": {"login": "bench"}}).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": f"bench-{i}", "X-Hub-Signature-256": sig}


def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    work = tempfile.mkdtemp(prefix="drydock-serve-bench.")
    try:
        repo = os.path.join(work, "app"); os.makedirs(repo)
        open(os.path.join(repo, "drydock.yml"), "w").write("on:\n  push:\n    branches: [main]\njobs:\n  t:\n    steps:\n      - run: \"true\"\n")
        git(repo, "init", "-q", "-b", "main"); git(repo, "add", "-A"); git(repo, "commit", "-q", "-m", "x")
        sha = git(repo, "rev-parse", "HEAD")
        data = os.path.join(work, "data"); port = free_port()
        s = Server(data, port)
        time.sleep(1.0)
        idle = s.rss_mb()
        st, v = s.api("POST", "/api/projects", {"name": "app", "repo_url": "file://" + repo, "webhook_secret": SECRET})
        assert st == 201, v
        # Warm the mirror and the pipeline cache.
        body, h = delivery(sha, "warm", "file://" + repo)
        s.req("POST", "/hooks/app/github", body, h)
        time.sleep(1.0)

        # Latency: one delivery at a time.
        lat = []
        parts = []  # (webhook handling, queue to dispatch, dispatch to job start)
        for i in range(LATENCY_N):
            body, h = delivery(sha, f"lat-{i}", "file://" + repo)
            t0 = time.time() * 1000
            st, resp = s.req("POST", "/hooks/app/github", body, h)
            assert st == 202, (st, resp)
            run = json.loads(resp)["runs"][0]
            deadline = time.time() + 30
            while True:
                st, r = s.api("GET", f"/api/runs/{run}")
                started = r["jobs"][0]["started_at"] if r["jobs"] else None
                if started:
                    lat.append(started - t0)
                    parts.append((r["created_at"] - t0, r["started_at"] - r["created_at"], started - r["started_at"]))
                    break
                if time.time() > deadline:
                    raise SystemExit(f"run {run} never started: {r}")
                time.sleep(0.002)
            # Let it finish so the next one measures an empty queue.
            while r["status"] in ("queued", "running"):
                time.sleep(0.005); st, r = s.api("GET", f"/api/runs/{run}")

        # Throughput: DELIVERIES deliveries from 16 threads.
        errors = []
        idx = iter(range(DELIVERIES)); lock = threading.Lock()
        def worker():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            while True:
                with lock:
                    i = next(idx, None)
                if i is None:
                    break
                body, h = delivery(sha, f"tp-{i}", "file://" + repo)
                c.request("POST", "/hooks/app/github", body=body, headers=h)
                r = c.getresponse(); r.read()
                if r.status != 202:
                    errors.append(r.status)
            c.close()
        t0 = time.time()
        ts = [threading.Thread(target=worker) for _ in range(16)]
        for t in ts: t.start()
        for t in ts: t.join()
        tp = DELIVERIES / (time.time() - t0)
        busy = s.rss_mb()
        s.stop()

        # 10,000 stored runs, and a 100,000-line log.
        db = sqlite3.connect(os.path.join(data, "drydock.db"))
        n = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        ctx = json.dumps({"name": "push", "git_ref": "refs/heads/main", "sha": sha})
        now = int(time.time() * 1000)
        for i in range(max(0, 10000 - n)):
            cur = db.execute("INSERT INTO runs (project, pipeline, event, git_ref, sha, cause, status, context, created_at, started_at, finished_at) VALUES ('app','drydock.yml','push','refs/heads/main',?,?, 'success', ?, ?, ?, ?)",
                             (sha, f"push to main (bench {i})", ctx, now, now, now))
            rid = cur.lastrowid
            db.execute("INSERT INTO run_meta (run_id, project) VALUES (?, 'app')", (rid,))
            db.execute("INSERT INTO jobs (run_id, name, status, needs, started_at, finished_at) VALUES (?, 't', 'success', '[]', ?, ?)", (rid, now, now))
        cur = db.execute("INSERT INTO runs (project, pipeline, event, git_ref, sha, cause, status, context, created_at) VALUES ('app','drydock.yml','push','refs/heads/main',?,'big log','success',?,?)", (sha, ctx, now))
        big = cur.lastrowid
        db.execute("INSERT INTO run_meta (run_id, project) VALUES (?, 'app')", (big,))
        job = db.execute("INSERT INTO jobs (run_id, name, status, needs) VALUES (?, 'build', 'success', '[]')", (big,)).lastrowid
        db.executemany("INSERT INTO log_lines (job_id, seq, step_idx, stream, ts, line) VALUES (?, ?, 0, 'stdout', ?, ?)",
                       ((job, i + 1, now, f"\x1b[32mstep {i}\x1b[0m compiling module number {i} of the big build ........") for i in range(100000)))
        db.commit(); runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]; db.close()

        s = Server(data, port)
        time.sleep(1.0)
        for path in ("/api/runs?limit=500", "/api/projects", f"/api/runs/{big}"):
            s.req("GET", path)
        stored = s.rss_mb()
        def timed(path, k=5):
            xs = []
            for _ in range(k):
                t0 = time.time(); st, body = s.req("GET", path); xs.append((time.time() - t0) * 1000)
                assert st == 200, (path, st)
            return pct(xs, 50), len(body)
        page, page_len = timed(f"/runs/{big}")
        full, full_len = timed(f"/runs/{big}/jobs/build/log", 3)
        api, api_len = timed(f"/api/runs/{big}/jobs/build/logs?limit=100000", 3)
        s.stop()

        print(f"webhook-to-job-start latency ({LATENCY_N} deliveries, one at a time): p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms (target p99 < 200 ms)")
        for k, name in enumerate(["delivery received to run queued", "queued to dispatched", "dispatched to job start (checkout, workspace)"]):
            xs = [p[k] for p in parts]
            print(f"  {name}: p50 {pct(xs, 50):.1f} ms, p99 {pct(xs, 99):.1f} ms")
        print(f"sustained deliveries: {tp:.0f}/s ({DELIVERIES} deliveries from 16 clients, each starting a run; non-202 answers: {len(errors)})")
        print(f"memory: idle {idle:.1f} MB (target < 50 MB); after the load {busy:.1f} MB; with {runs} stored runs {stored:.1f} MB")
        print(f"run page with a 100,000-line log: {page:.1f} ms ({page_len // 1024} KiB; the log streams over SSE)")
        print(f"full log page (100,000 lines as HTML): {full:.0f} ms ({full_len // 1024 // 1024} MiB); JSON logs API: {api:.0f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
