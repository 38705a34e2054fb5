"""Drives one FineTuning service process end to end: start, upload, train a job, chat, stop.

Prints one JSON line: device, steps, training wall time, tokens/s (median of the logged steps),
chat latency. Used by bench/finetuning-gpu.sh on the accelerator machine (CUDA and CPU runs).
  python3 bench/finetuning_service.py <service executable> <label> [examples] [epochs]
"""
import json, os, random, socket, statistics, subprocess, sys, tempfile, time, urllib.request

app, label = sys.argv[1], sys.argv[2]
examples = int(sys.argv[3]) if len(sys.argv) > 3 else 400
epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 2

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

port = free_port()
base = f"http://127.0.0.1:{port}"
data = tempfile.mkdtemp(prefix="ft-bench-")
env = dict(os.environ, ASPIRETUNE_DATA=data, urls=base, DOTNET_ENVIRONMENT="Production",
           FineTuning__BuiltIn__Layers="4", FineTuning__BuiltIn__Hidden="256", FineTuning__BuiltIn__Heads="4",
           FineTuning__BuiltIn__Context="256", FineTuning__PollIntervalMs="200", FineTuning__ExactMatchExamples="8")
log = open(os.path.join(data, "service.log"), "w")
proc = subprocess.Popen([app], env=env, stdout=log, stderr=subprocess.STDOUT)

def call(method, path, body=None, raw=None, ctype="application/json"):
    data_bytes = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data_bytes, method=method, headers={"content-type": ctype})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read() or b"null")

try:
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/health", timeout=2)
            break
        except Exception:
            time.sleep(0.2)
    rng = random.Random(3)
    words = ["soup", "bread", "service", "coffee", "salad", "music", "table", "dessert", "pasta", "wine", "room", "staff"]
    good, bad = ["excellent", "lovely", "superb", "delightful"], ["awful", "terrible", "dreadful", "horrible"]
    lines = []
    for i in range(examples):
        pos = i % 2 == 0
        adj = good if pos else bad
        text = f"The {rng.choice(words)} was {rng.choice(adj)} and the {rng.choice(words)} seemed {rng.choice(adj)} on visit {i}"
        lines.append(json.dumps({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "positive" if pos else "negative"}]}))
    f = call("POST", "/api/fine-tuning/files?filename=train.jsonl", raw=("\n".join(lines) + "\n").encode(), ctype="application/jsonl")
    job = call("POST", "/api/fine-tuning/jobs", {"model": "aspiretune-tiny", "training_file": f["id"],
               "hyperparameters": {"n_epochs": epochs, "batch_size": 16, "learning_rate": 0.001}})
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.5)
        job = call("GET", f"/api/fine-tuning/jobs/{job['id']}")
    events = call("GET", f"/api/fine-tuning/jobs/{job['id']}/events?limit=1000")["data"]
    started = next(e["message"] for e in events if e["type"] == "started")
    metrics = call("GET", f"/api/fine-tuning/jobs/{job['id']}/metrics")["data"]
    tps = [m["tokens_per_second"] for m in metrics if m["valid_loss"] is None][2:]
    model = job["fine_tuned_model"]
    latencies = []
    answer = None
    for _ in range(5):
        t = time.perf_counter()
        r = call("POST", "/v1/chat/completions", {"model": model, "temperature": 0, "max_tokens": 16,
                 "messages": [{"role": "user", "content": "The wine was superb and the staff seemed lovely on visit 999"}]})
        latencies.append(time.perf_counter() - t)
        answer = r["choices"][0]["message"]["content"]
    print(json.dumps({"label": label, "status": job["status"], "device": started.split(" on ")[1].split(" by ")[0],
                      "steps": job["step"], "train_s": job["finished_at"] - job["started_at"],
                      "tokens_per_s": statistics.median(tps) if tps else 0, "chat_ms": 1000 * statistics.median(latencies[1:]),
                      "answer": answer, "fit": job.get("fit_verdict"), "best": job.get("best_metrics")}))
finally:
    proc.kill()
    proc.wait()
