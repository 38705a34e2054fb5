#!/usr/bin/env python3
"""The fault matrix by hand, in distributed mode (docs/durability.md#fault-matrix-by-hand).

The four services run as separate processes (as infra/run-distributed.sh runs them) on a RabbitMQ node and a
PostgreSQL cluster of this script's own, started with the AppHost's AppHost/Local/*.sh (own ports and data folders,
never the shared servers), with a hosted model played by MockOpenAI. A clean experiment (150 SpamAssassin emails,
seed 7; prompted, retrieval, kNN and fine-tuned candidates) comes first; each scenario then runs the same experiment on
a fresh deployment (own virtual host and databases), injects its fault and checks that the experiment succeeded
exactly once and that its results (per-candidate scores, confusion matrices, winner, checkpoints and losses) equal the
clean run's. Prints a Markdown table at the end.

Usage, as root from the repository root after `dotnet build tests/Platform.Tests`:
    python3 infra/fault-matrix.py [worker comparison evaluation retrieval broker pg replica four malformed]
Environment: FAULTS_ROOT (default /tmp/aspiretune-faults), FAULTS_PORT_BASE (default 5300; services take 10 ports per
scenario from there, the broker, database and model fixed ports below it are FAULTS_AMQP etc.).
"""
import json, os, subprocess, sys, time, signal, uuid, requests

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = f"{REPO}/tests/Platform.Tests/bin/Debug/net10.0/linux-x64"
MOCKBIN = BIN
ROOT = os.environ.get("FAULTS_ROOT", "/tmp/aspiretune-faults")
env_port = lambda name, default: int(os.environ.get(name, default))
AMQP, MGMT, DIST, EPMD = env_port("FAULTS_AMQP", 5782), env_port("FAULTS_MANAGEMENT", 15782), env_port("FAULTS_DIST", 25782), env_port("FAULTS_EPMD", 4399)
PGPORT, MOCKPORT, PORT_BASE = env_port("FAULTS_POSTGRES", 5462), env_port("FAULTS_MODEL", 5999), env_port("FAULTS_PORT_BASE", 5300)
RUSER, RPASS, PGPASS = "matrix", "matrixpass", "matrixpg"
SERVICES = ["retrieval", "finetuning", "evaluation", "comparison"]
PROJ = {"retrieval": "Retrieval", "finetuning": "FineTuning", "evaluation": "Evaluation", "comparison": "Comparison"}
LOG = open(f"{ROOT}/matrix.log", "a") if os.path.isdir(ROOT) else None

def log(*a):
    line = time.strftime("%H:%M:%S ") + " ".join(str(x) for x in a)
    print(line, flush=True)
    if LOG: LOG.write(line + "\n"); LOG.flush()

servers = {}
DEPLOYMENTS = []
def start_rabbit():
    env = dict(os.environ, LOCAL_DATA=f"{ROOT}/rabbit", AMQP_PORT=str(AMQP), MANAGEMENT_PORT=str(MGMT), DIST_PORT=str(DIST),
               EPMD_PORT=str(EPMD), RABBITMQ_USER=RUSER, RABBITMQ_PASSWORD=RPASS)
    servers["rabbit"] = subprocess.Popen(["bash", f"{REPO}/AppHost/Local/rabbitmq.sh"], env=env, stdout=open(f"{ROOT}/rabbit.log", "a"), stderr=subprocess.STDOUT)
    for _ in range(240):
        try:
            if requests.get(f"http://127.0.0.1:{MGMT}/api/overview", auth=(RUSER, RPASS), timeout=2).ok: break
        except Exception: pass
        time.sleep(0.5)
    log("rabbit up")

def stop_server(name):
    p = servers.pop(name); p.send_signal(signal.SIGTERM); p.wait(120); log(name, "stopped")

def start_pg():
    env = dict(os.environ, LOCAL_DATA=f"{ROOT}/pg", POSTGRES_PORT=str(PGPORT), POSTGRES_PASSWORD=PGPASS)
    servers["pg"] = subprocess.Popen(["bash", f"{REPO}/AppHost/Local/postgres.sh"], env=env, stdout=open(f"{ROOT}/pg.log", "a"), stderr=subprocess.STDOUT)
    for _ in range(240):
        r = subprocess.run(["psql", f"postgresql://postgres:{PGPASS}@127.0.0.1:{PGPORT}/postgres", "-Atc", "select 1"], capture_output=True, text=True)
        if r.stdout.strip() == "1": break
        time.sleep(0.5)
    log("pg up")

def vhost(name):
    requests.put(f"http://127.0.0.1:{MGMT}/api/vhosts/{name}", auth=(RUSER, RPASS)).raise_for_status()
    requests.put(f"http://127.0.0.1:{MGMT}/api/permissions/{name}/{RUSER}", auth=(RUSER, RPASS), json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    return f"amqp://{RUSER}:{RPASS}@127.0.0.1:{AMQP}/{name}"

def sql(db, q):
    r = subprocess.run(["psql", f"postgresql://postgres:{PGPASS}@127.0.0.1:{PGPORT}/{db}", "-Atc", q], capture_output=True, text=True)
    return r.stdout.strip()

SETTINGS = {
    "FineTuning__BuiltIn__Layers": "1", "FineTuning__BuiltIn__Hidden": "32", "FineTuning__BuiltIn__Heads": "2",
    "FineTuning__ExactMatchExamples": "0", "FineTuning__PollIntervalMs": "200", "FineTuning__HeartbeatSeconds": "1",
    "Evaluation__PollIntervalMs": "200", "Outbox__PollIntervalMs": "250",
    "Comparison__FineTuningHyperparameters__n_epochs": "1", "Comparison__FineTuningHyperparameters__batch_size": "8",
    "Comparison__FineTuningHyperparameters__checkpoint_interval": "4", "Comparison__FineTuningHyperparameters__eval_interval": "4",
}

class Deployment:
    def __init__(self, name, base_port):
        self.name = name
        self.ports = {s: base_port + i for i, s in enumerate(SERVICES)}
        self.root = f"{ROOT}/{name}"
        os.makedirs(f"{self.root}/logs", exist_ok=True)
        self.mq = vhost(name)
        self.procs = {}
        DEPLOYMENTS.append(self)
    def db(self, s): return f"m_{self.name.replace('-', '_')}_{s}"
    def env(self, s, data=None):
        e = dict(os.environ, **SETTINGS)
        e.update({"urls": f"http://127.0.0.1:{self.ports[s]}", "DOTNET_ENVIRONMENT": "Production", "ASPNETCORE_ENVIRONMENT": "Production",
                  "ASPIRETUNE_DATA": data or f"{self.root}/{s}", "Artifacts__Path": f"{self.root}/artifacts",
                  "ConnectionStrings__messaging": self.mq,
                  f"ConnectionStrings__{s}db": f"Host=127.0.0.1;Port={PGPORT};Username=postgres;Password={PGPASS};Database={self.db(s)}"})
        for o in SERVICES: e[f"services__{o}__http__0"] = f"http://127.0.0.1:{self.ports[o]}"
        return e
    def start(self, s, port=None, key=None, data=None):
        key = key or s
        e = self.env(s, data)
        if port: e["urls"] = f"http://127.0.0.1:{port}"
        self.procs[key] = subprocess.Popen(["dotnet", f"{BIN}/AspireTune.{PROJ[s]}.dll"], cwd=BIN, env=e,
                                          stdout=open(f"{self.root}/logs/{key}.log", "a"), stderr=subprocess.STDOUT)
        url = e["urls"]
        for _ in range(600):
            try:
                if requests.get(url + "/health", timeout=5).ok: break
            except Exception: pass
            if self.procs[key].poll() is not None: raise SystemExit(f"{key} exited")
            time.sleep(0.2)
        log(self.name, key, "healthy")
    def start_all(self):
        for s in SERVICES: self.start(s)
        r = requests.put(f"{self.url('evaluation')}/api/evaluation/models/mock-gpt", json={"id": "mock-gpt", "kind": "OpenAICompatible",
            "baseUrl": f"http://127.0.0.1:{MOCKPORT}/v1", "model": "mock-gpt", "inputPricePerMillion": 0.15, "outputPricePerMillion": 0.6, "maxConcurrency": 2})
        r.raise_for_status()
    def kill(self, key):
        self.procs[key].send_signal(signal.SIGKILL); self.procs[key].wait(); log(self.name, key, "SIGKILL")
    def stop_all(self):
        for k, p in self.procs.items():
            if p.poll() is None: p.send_signal(signal.SIGKILL); p.wait()
        DEPLOYMENTS.remove(self) if self in DEPLOYMENTS else None
    def url(self, s): return f"http://127.0.0.1:{self.ports[s]}"
    def get(self, s, path): return requests.get(self.url(s) + path, timeout=60).json()
    def experiment(self, name, seed=7):
        lines = open(f"{REPO}/samples/spam-assassin/spam.jsonl").read().splitlines()
        d = "\n".join(l for k, l in enumerate(lines) if k % 2 == 0)
        r = requests.post(self.url("comparison") + "/api/experiments", json={"name": name, "dataset": d, "candidates": ["prompted", "retrieval", "knn", "fine-tuned"],
                                                                                "modelEndpoints": ["mock-gpt"], "seed": seed}, timeout=120)
        r.raise_for_status(); return r.json()["id"]
    def exp(self, i): return self.get("comparison", f"/api/experiments/{i}")
    def job(self, i):
        for j in self.get("finetuning", "/api/fine-tuning/jobs?limit=100")["data"]:
            if j["training_file"].startswith(f"experiments/{i.replace('-', '')}/"): return j
    def runs(self, i): return [r for r in self.get("evaluation", "/api/evaluation/runs") if r.get("experimentId") == i]
    def wait(self, cond, what, timeout=600):
        t0 = time.time()
        while not cond():
            if time.time() - t0 > timeout: raise SystemExit(f"timeout waiting for {what}")
            time.sleep(0.2)
        log(self.name, "ok:", what, f"({time.time()-t0:.1f}s)")
    def settle(self, i, timeout=900):
        self.wait(lambda: self.exp(i)["status"] in ("succeeded", "failed", "cancelled"), f"experiment {i} settles", timeout)
        return self.exp(i)
    def results(self, i):
        rep = self.get("comparison", f"/api/experiments/{i}/report.json")
        cands = sorted((c["name"], c["accuracy"], c["macroF1"], c.get("likelihoodAccuracy"), c["items"], c["invalid"], c["errors"]) for c in rep["candidates"])
        j = self.job(i)
        cps = sorted((c["step_number"], round(c["metrics"]["train_loss"], 6), round(c["metrics"]["valid_loss"] or 0, 6))
                     for c in self.get("finetuning", f"/api/fine-tuning/jobs/{j['id']}/checkpoints?limit=100")["data"])
        return {"candidates": cands, "confusion": json.dumps(rep["confusion"], sort_keys=True), "winner": rep["winner"], "checkpoints": cps}
    def once(self, i):
        e = self.exp(i); logm = [l["message"] for l in e["log"]]
        j = self.job(i)
        ev = self.get("finetuning", f"/api/fine-tuning/jobs/{j['id']}/events?limit=1000")["data"]
        models = [m for m in self.get("finetuning", "/api/models")["data"] if (m.get("lineage") or {}).get("job_id") == j["id"]]
        runs = self.runs(i)
        facts = {
            "status": e["status"], "candidates": [c["status"] for c in e["candidates"]],
            "curated": sum(m.startswith("Curated ") for m in logm), "decisions": sum(m.startswith("Decision: ") for m in logm),
            "job_succeeded_events": sum(x["type"] == "succeeded" for x in ev), "models": len(models), "attempts": j["attempts"],
            "runs": len(runs), "runs_dupes": sum(r["completedCalls"] != r["totalCalls"] for r in runs),
            "started": [x["message"][:40] for x in ev if x["type"] == "started"],
        }
        exactly = (e["status"] == "succeeded" and all(c == "succeeded" for c in facts["candidates"]) and facts["curated"] == 1 and facts["decisions"] == 1
                   and facts["job_succeeded_events"] == 1 and facts["models"] == 1 and facts["runs_dupes"] == 0)
        return exactly, facts

def completed_rows(d, i):
    return int(sql(d.db("comparison"), f"select count(*) from outbox_messages where \"MessageType\" like 'AspireTune.Contracts.Comparison.ExperimentCompleted,%' and \"Body\" like '%{i}%'") or -1)

def evaluating(d, i):
    return any(0 < r["completedCalls"] < r["totalCalls"] for r in d.runs(i))

def job_status(d, i):
    j = d.job(i); return j and j["status"]

ROWS = []
def record(scenario, d, i, clean):
    e = d.exp(i)
    ok, facts = d.once(i)
    res = d.results(i) if e["status"] == "succeeded" else None
    facts["ExperimentCompleted_rows"] = completed_rows(d, i)
    ok = ok and facts["ExperimentCompleted_rows"] == 1
    same = (res == clean) if clean is not None else None
    diff = "" if same or res is None or clean is None else json.dumps({k: (res[k], clean[k]) for k in res if res[k] != clean[k]})[:600]
    ROWS.append((scenario, e["status"], ok, same, facts, diff))
    log("ROW", scenario, e["status"], "once" if ok else "NOT-ONCE", {None: "clean", True: "same"}.get(same, f"DIFF {diff}"), json.dumps(facts))
    return res

def main(which):
    os.makedirs(ROOT, exist_ok=True)
    global LOG; LOG = open(f"{ROOT}/matrix.log", "a")
    mock = subprocess.Popen(["dotnet", f"{MOCKBIN}/aspiretune-mock-openai.dll", "--urls", f"http://127.0.0.1:{MOCKPORT}",
        "--MockOpenAI:Rules:0:Pattern", r"Message:[\s\S]*\b(click|free|money|offer|unsubscribe|remove|order|\$)", "--MockOpenAI:Rules:0:Reply", "spam",
        "--MockOpenAI:Fallback", "ham", "--MockOpenAI:LatencyMs", "60"], cwd=MOCKBIN, stdout=open(f"{ROOT}/mock.log", "a"), stderr=subprocess.STDOUT)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    for _ in range(300):
        try:
            requests.get(f"http://127.0.0.1:{MOCKPORT}/v1/models", timeout=2); break
        except Exception: time.sleep(0.2)
    log("mock up")
    start_rabbit(); start_pg()
    port = PORT_BASE
    clean = None
    try:
        def new(name):
            nonlocal port
            d = Deployment(name + "-" + uuid.uuid4().hex[:6], port); port += 10
            d.start_all(); return d
        # 1 clean + 2 worker kill on the same deployment (the worker's second job)
        d = new("clean")
        i = d.experiment("clean"); d.settle(i); clean = record("clean (undisturbed)", d, i, None)
        if "worker" in which:
            i = d.experiment("worker-kill")
            d.wait(lambda: (j := d.job(i)) is not None and len(d.get("finetuning", f"/api/fine-tuning/jobs/{j['id']}/checkpoints")["data"]) >= 2, "2 checkpoints of job 2")
            d.kill("finetuning"); d.start("finetuning"); d.settle(i); record("kill -9 FineTuning after 2nd checkpoint of its 2nd job", d, i, clean)
        d.stop_all()
        if "comparison" in which:
            d = new("cmp"); i = d.experiment("cmp")
            d.wait(lambda: job_status(d, i) == "running", "training started")
            d.kill("comparison")
            d.wait(lambda: job_status(d, i) == "succeeded", "training done while Comparison is down")
            d.start("comparison"); d.settle(i); record("kill -9 Comparison mid-experiment", d, i, clean); d.stop_all()
        if "evaluation" in which:
            d = new("eval"); i = d.experiment("eval")
            d.wait(lambda: evaluating(d, i), "a run part-way")
            d.kill("evaluation"); d.start("evaluation"); d.settle(i); record("kill -9 Evaluation mid-run", d, i, clean); d.stop_all()
        if "retrieval" in which:
            d = new("retr"); i = d.experiment("retr")
            d.wait(lambda: any(l["message"].startswith("Indexing") for l in d.exp(i)["log"]), "indexing sent")
            d.kill("retrieval"); time.sleep(3); d.start("retrieval"); d.settle(i); record("kill -9 Retrieval mid-indexing", d, i, clean); d.stop_all()
        if "broker" in which:
            d = new("mq"); i = d.experiment("mq")
            d.wait(lambda: job_status(d, i) == "running", "training started")
            stop_server("rabbit")
            d.wait(lambda: job_status(d, i) == "succeeded", "training done while the broker is down")
            time.sleep(5); start_rabbit(); d.settle(i); record("RabbitMQ stop/start mid-training", d, i, clean); d.stop_all()
        if "pg" in which:
            d = new("pg"); i = d.experiment("pg")
            d.wait(lambda: job_status(d, i) == "running" and any(r["completedCalls"] > 0 for r in d.runs(i)), "training and a run under way")
            stop_server("pg"); time.sleep(3); start_pg(); d.settle(i); record("PostgreSQL restart mid-training/evaluation", d, i, clean); d.stop_all()
        if "replica" in which:
            d = new("rep"); d.start("evaluation", port=port, key="evaluation-2"); port += 1
            i = d.experiment("rep"); d.settle(i); record("second Evaluation replica (same data folder)", d, i, clean); d.stop_all()
        if "four" in which:
            d = new("four"); ids = [d.experiment(f"four-{k}") for k in range(4)]
            for i in ids: d.settle(i)
            for k, i in enumerate(ids): record(f"four experiments at once (#{k+1})", d, i, clean)
            d.stop_all()
        if "malformed" in which:
            d = new("bad")
            # garbage and a body missing required members straight into start-experiment
            for body in ["{not json", json.dumps({"message": {"name": "x"}, "messageType": ["urn:message:AspireTune.Contracts.Comparison:StartExperiment"]})]:
                requests.post(f"http://127.0.0.1:{MGMT}/api/exchanges/{d.name}/amq.default/publish", auth=(RUSER, RPASS),
                              json={"properties": {"content_type": "application/vnd.masstransit+json"}, "routing_key": "start-experiment", "payload": body, "payload_encoding": "string"}).raise_for_status()
            i = d.experiment("bad"); d.settle(i)
            q = requests.get(f"http://127.0.0.1:{MGMT}/api/queues/{d.name}/start-experiment_error", auth=(RUSER, RPASS)).json()
            log("malformed: start-experiment_error holds", q.get("messages"))
            record(f"malformed messages (2 to start-experiment_error: {q.get('messages')})", d, i, clean); d.stop_all()
    finally:
        for d in list(DEPLOYMENTS): d.stop_all()
        for k in list(servers): stop_server(k)
        mock.send_signal(signal.SIGTERM)
        print("\n| scenario | completed | exactly once | results equal to clean |\n|---|---|---|---|")
        for s, st, ok, same, facts, diff in ROWS:
            print(f"| {s} | {st} | {'yes' if ok else 'NO'} | {'-' if same is None else ('yes' if same else 'NO: ' + diff)} |")

if __name__ == "__main__":
    main(sys.argv[1:] or ["worker", "comparison", "evaluation", "retrieval", "broker", "pg", "replica", "four", "malformed"])
