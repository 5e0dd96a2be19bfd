#!/usr/bin/env python3
"""bench/compare.py: msgstore side by side with its peers, one command, one report.

Starts msgstore (`msgstore serve`) and the peers (Redis, NATS JetStream, Mosquitto, PostgreSQL,
all from Debian packages) on loopback, runs the same workloads against each, back to back, in
several rounds, and writes bench/results/<date>-<label>-compare.md with PNG plots (gnuplot).
Every figure carries its durability class and is compared only within it:

  D1  acknowledged after write() to the OS: survives kill -9 of the server, not power loss
  D2  acknowledged after fdatasync: survives power loss

Usage: bench/compare.py [--quick] [--label L] [--rounds N] [--only W1,W2,...]
Every server is started by this script, listens on 127.0.0.1 only, and is stopped by its PID
(also on error and Ctrl-C). Every load loop has a message count and a time limit.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
BUILD = REPOSITORY / "build" / "release"
MSGSTORE = BUILD / "src" / "cli" / "msgstore"
NETBENCH = BUILD / "bench" / "netbench"
PROBE = BUILD / "bench" / "probe"
CLIENTS = REPOSITORY / "bench" / "clients"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SYSTEMS = ("msgstore", "redis", "nats", "mosquitto", "postgres")
WANTED: set[str] = set(SYSTEMS)
# --pin: every server on the last CPU, netbench on the others (taskset), so that the load
# generator and the server under test stop competing for the same CPUs. Empty: no pinning.
PIN: dict[str, list[str]] = {}


def wanted(system: str) -> bool:
    return system in WANTED


def log(text: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Server:
    """A server process this script started: tracked and stopped by its PID."""

    running: list["Server"] = []

    def __init__(self, name: str, command: list[str], port: int, scratch: Path, run_as: str | None = None):
        self.name, self.port, self.scratch = name, port, scratch
        self.memory_limit: MemoryLimit | None = None
        self.log_path = scratch / f"{name}.log"
        preexec = None
        if run_as:  # PostgreSQL refuses to run as root
            import pwd
            account = pwd.getpwnam(run_as)

            def preexec():  # noqa: E306
                os.setgid(account.pw_gid)
                os.setuid(account.pw_uid)
        self.process = subprocess.Popen(PIN.get("server", []) + command, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, preexec_fn=preexec, cwd=scratch)
        Server.running.append(self)
        if not wait_for_port(port, 30):
            self.stop()
            raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port}; see {self.log_path}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and its descendants (PostgreSQL backends), live or reaped."""
        processes = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    processes[int(entry.name)] = (int(fields[1]), sum(int(field) for field in fields[11:13]),
                                                  sum(int(field) for field in fields[13:15]))
                except (OSError, IndexError, ValueError):
                    continue
        if self.process.pid not in processes:
            return 0.0
        total, family = 0, {self.process.pid}
        changed = True
        while changed:
            changed = False
            for pid, (parent, _, _) in processes.items():
                if parent in family and pid not in family:
                    family.add(pid)
                    changed = True
        for pid in family:
            _, own, reaped_children = processes[pid]
            total += own + reaped_children
        return total / CLOCK_TICKS

    def limit_memory(self, mebibytes: int) -> bool:
        """Moves the server into its own memory cgroup of that size; False where not possible."""
        self.memory_limit = MemoryLimit.create(f"{self.name}-{self.port}", mebibytes)
        return self.memory_limit is not None and self.memory_limit.add(self.process.pid)

    def peak_resident_mebibytes(self) -> float:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self in Server.running:
            Server.running.remove(self)


def stop(server: "Server | None") -> None:
    if server is not None:
        server.stop()
        if server.memory_limit is not None:
            server.memory_limit.remove()


class MemoryLimit:
    """A memory cgroup (v2 or v1) capping a server's memory, its page cache included, so that a
    backlog larger than the cap is replayed from the disk rather than from memory. create()
    answers None where cgroups cannot be written (not root, or no memory controller)."""

    def __init__(self, directory: Path):
        self.directory = directory

    @staticmethod
    def create(name: str, mebibytes: int) -> "MemoryLimit | None":
        unified = Path("/sys/fs/cgroup/cgroup.controllers")
        if unified.exists() and "memory" in unified.read_text().split():
            base, limit_file = Path("/sys/fs/cgroup"), "memory.max"
            try:
                (base / "cgroup.subtree_control").write_text("+memory")
            except OSError:
                pass
        elif Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists():
            base, limit_file = Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"
        else:
            return None
        directory = base / f"msgstore-bench-{os.getpid()}-{name}"
        try:
            directory.mkdir(exist_ok=True)
            (directory / limit_file).write_text(str(mebibytes << 20))
        except OSError:
            return None
        return MemoryLimit(directory)

    def add(self, pid: int) -> bool:
        try:
            (self.directory / "cgroup.procs").write_text(str(pid))
            return True
        except OSError:
            return False

    def remove(self) -> None:
        try:
            self.directory.rmdir()
        except OSError:
            pass


def stop_all(*_arguments) -> None:
    for server in list(Server.running):
        stop(server)


def run_json(command: list[str], time_limit_seconds: float, environment: dict | None = None) -> dict:
    """Runs a load tool that prints one JSON object as its last stdout line."""
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=time_limit_seconds,
                                   env={**os.environ, **(environment or {})})
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {time_limit_seconds:.0f} s: {' '.join(command[:3])}"}
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": f"exit {completed.returncode}: {completed.stderr.strip()[-300:]}"}
    result = json.loads(lines[-1])
    if completed.returncode != 0 and "error" not in result:
        result["error"] = f"exit {completed.returncode}: {completed.stderr.strip()[-300:]}"
    return result


def http(method: str, port: int, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, {"raw": text.decode(errors="replace")}


# ----------------------------------------------------------------------------- the systems

class Systems:
    """Starts and stops each system on demand, in its own scratch directory."""

    def __init__(self, scratch: Path):
        self.scratch = scratch

    def fresh(self, name: str) -> Path:
        directory = self.scratch / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        return directory

    def msgstore(self, extra_arguments: list[str] | None = None) -> Server | None:
        if not wanted("msgstore"):
            return None
        directory = self.fresh("msgstore")
        port = free_port()
        server = Server("msgstore", [str(MSGSTORE), "--data", str(directory / "data"), "serve",
                                     "--listen", f"127.0.0.1:{port}", *(extra_arguments or [])], port, directory)
        return server

    def redis(self, appendfsync: str) -> Server | None:
        if not wanted("redis"):
            return None
        directory = self.fresh("redis")
        port = free_port()
        return Server("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
                                "--appendonly", "yes", "--appendfsync", appendfsync, "--save", "",
                                "--auto-aof-rewrite-percentage", "0", "--protected-mode", "yes"], port, directory)

    def nats(self) -> Server | None:
        if not wanted("nats"):
            return None
        directory = self.fresh("nats")
        port = free_port()
        return Server("nats", ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(directory / "store")],
                      port, directory)

    def mosquitto(self) -> Server | None:
        if not wanted("mosquitto"):
            return None
        directory = self.fresh("mosquitto")
        port = free_port()
        configuration = directory / "mosquitto.conf"
        configuration.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                                 f"persistence_location {directory}/\nautosave_interval 1800\n")
        return Server("mosquitto", ["mosquitto", "-c", str(configuration)], port, directory)

    def postgres(self) -> Server | None:
        if not wanted("postgres"):
            return None
        binaries = postgres_binaries()
        if binaries is None:
            return None
        directory = self.fresh("postgres")
        shutil.chown(directory, "postgres", "postgres")
        subprocess.run(["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", str(binaries / "initdb"),
                        "-D", str(directory / "data"), "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True)
        port = free_port()
        return Server("postgres", [str(binaries / "postgres"), "-D", str(directory / "data"), "-p", str(port),
                                   "-c", "listen_addresses=127.0.0.1", "-c", "fsync=on", "-c", "synchronous_commit=on",
                                   "-c", "shared_buffers=512MB", "-c", "max_wal_size=4GB",
                                   "-c", "unix_socket_directories=" + str(directory)],
                      port, directory, run_as="postgres")


def postgres_binaries() -> Path | None:
    """The server binaries of Debian's postgresql package (found through dpkg, not a fixed path)."""
    try:
        listing = subprocess.run(["dpkg", "-L", "postgresql-15"], capture_output=True, text=True).stdout.split()
    except OSError:
        return None
    for path in listing:
        if path.endswith("/bin/initdb"):
            return Path(path).parent
    return None


# ----------------------------------------------------------------------------- workloads

class SkipSystem(Exception):
    """A system left out with --systems."""


class Results:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, workload: str, case: str, system: str, durability: str, result: dict, server: Server | None,
            cpu_before: float, payload_bytes: int):
        row = {"workload": workload, "case": case, "system": system, "durability": durability, **result}
        if server is not None:
            cpu = server.cpu_seconds() - cpu_before
            moved = result.get("messages", 0) * payload_bytes / 1e9
            row["server_cpu_seconds"] = cpu
            row["server_cpu_seconds_per_gigabyte"] = cpu / moved if moved > 0 else None
            row["server_peak_resident_mebibytes"] = server.peak_resident_mebibytes()
        self.rows.append(row)
        shown = f"{result.get('messages_per_second', 0):,.0f} msgs/s" if "messages_per_second" in result else ""
        if "latency_us" in result and result.get("rate"):
            shown += f" p99 {result['latency_us']['p99']:.0f} us"
        log(f"{workload} | {case} | {system} [{durability}]: {shown} {result.get('error', '')}")


def msgstore_stream(port: int, name: str, partitions: int, fsync: str) -> None:
    http("DELETE", port, f"/v1/streams/{name}")
    status, body = http("POST", port, "/v1/streams", {"name": name, "subjects": [f"{name}.>"], "partitions": partitions,
                                                       "fsync": fsync, "max_message_bytes": 1 << 20})
    if status >= 300:
        raise RuntimeError(f"msgstore: creating stream {name} failed: {status} {body}")


def netbench(port: int, protocol: str, seconds: float, **options) -> dict:
    command = PIN.get("client", []) + [str(NETBENCH), "--protocol", protocol, "--port", str(port), "--seconds", str(seconds)]
    for key, value in options.items():
        command += ["--" + key.replace("_", "-"), str(value)]
    return run_json(command, seconds + 60)


def redis_benchmark(port: int, clients: int, pipeline: int, payload_bytes: int, requests: int, keys: int,
                    seconds: float) -> dict:
    key = "bench:__rand_int__" if keys > 1 else "bench"
    command = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients), "-P", str(pipeline),
               "-n", str(requests), "--csv"]
    if keys > 1:
        command += ["-r", str(keys)]
    command += ["XADD", key, "*", "p", "a" * payload_bytes]
    started = time.monotonic()
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    except subprocess.TimeoutExpired:
        return {"error": "redis-benchmark timed out"}
    elapsed = time.monotonic() - started
    for line in completed.stdout.splitlines():
        fields = [field.strip('"') for field in line.split('","')]
        if len(fields) >= 2 and fields[0].startswith("XADD"):
            rate = float(fields[1])
            latency = {}
            if len(fields) >= 8:  # avg, min, p50, p95, p99, max in ms
                latency = {"p50": float(fields[4]) * 1000, "p99": float(fields[6]) * 1000, "max": float(fields[7]) * 1000}
            return {"messages": requests, "seconds": elapsed, "messages_per_second": rate,
                    "payload_megabytes_per_second": rate * payload_bytes / 1e6, "latency_us": latency}
    return {"error": f"redis-benchmark: {completed.stderr.strip()[-200:]}"}


def node_client(script: str, arguments: list, seconds: float) -> dict:
    return run_json(["node", str(CLIENTS / script), *[str(argument) for argument in arguments]], seconds + 90)


def pgbench(server: Server, payload_bytes: int, rows_per_transaction: int, clients: int, seconds: float) -> dict:
    binaries = postgres_binaries()
    directory = server.scratch
    psql = [str(binaries / "psql"), "-q", "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres"]
    subprocess.run(psql + ["-c", "CREATE TABLE IF NOT EXISTS messages (stream text NOT NULL, seq bigserial, "
                                 "ts timestamptz NOT NULL DEFAULT now(), key text, payload bytea NOT NULL, "
                                 "PRIMARY KEY (stream, seq))", "-c", "TRUNCATE messages", "-c", "CHECKPOINT"],
                   check=True, capture_output=True)
    values = ", ".join(["('bench', NULL, :payload::bytea)"] * rows_per_transaction)
    script = directory / f"insert{rows_per_transaction}.sql"
    script.write_text(f"INSERT INTO messages (stream, key, payload) VALUES {values};\n")
    command = [str(binaries / "pgbench"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "-n",
               "-M", "prepared", "-T", str(int(seconds)), "-c", str(clients), "-j", str(min(clients, 2)),
               "-D", "payload=\\x" + "61" * payload_bytes, "-f", str(script), "postgres"]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        return {"error": "pgbench timed out"}
    for line in completed.stdout.splitlines():
        if line.startswith("tps = "):
            transactions = float(line.split()[2])
            rate = transactions * rows_per_transaction
            return {"messages": int(rate * seconds), "seconds": seconds, "messages_per_second": rate,
                    "payload_megabytes_per_second": rate * payload_bytes / 1e6}
    return {"error": f"pgbench: {completed.stderr.strip()[-300:]}"}


def measure(results: Results, workload: str, case: str, system: str, durability: str, server: Server | None,
            payload_bytes: int, action) -> dict:
    if server is None:  # a system left out with --systems
        return {}
    before = server.cpu_seconds() if server else 0.0
    result = action()
    results.add(workload, case, system, durability, result, server, before, payload_bytes)
    return result


def publish_workloads(systems: Systems, results: Results, plan: dict) -> None:
    """W2: networked publish at maximum rate, 100 B and 1 KiB, 1 and 16 partitions."""
    seconds = plan["seconds"]
    for payload_bytes in plan["sizes"]:
        for partitions in plan["partitions"]:
            case_suffix = f"{payload_bytes} B, {partitions} partition{'s' if partitions > 1 else ''}"
            keys = 16 if partitions > 1 else 0
            batch = 1000 if payload_bytes <= 100 else 100
            # msgstore, both durability classes, single and batched publishes.
            if wanted("msgstore"):
                server = systems.msgstore()
                try:
                    for fsync, durability in (("always", "D2"), ("never", "D1")):
                        stream = f"bench{fsync}"
                        msgstore_stream(server.port, stream, partitions, fsync)
                        measure(results, "publish", f"single messages, 50 connections, {case_suffix}", "msgstore HTTP",
                                durability, server, payload_bytes,
                                lambda: netbench(server.port, "http", seconds, connections=50, payload_bytes=payload_bytes,
                                                 keys=keys, stream=stream, subject=f"{stream}.a"))
                        measure(results, "publish", f"batches of {batch}, 50 connections, {case_suffix}", "msgstore HTTP",
                                durability, server, payload_bytes,
                                lambda: netbench(server.port, "http", seconds, connections=50, payload_bytes=payload_bytes,
                                                 keys=keys, batch=batch, stream=stream, subject=f"{stream}.a"))
                finally:
                    stop(server)
            # Redis Streams, AOF always (D2) and everysec (D1).
            for appendfsync, durability in (("always", "D2"), ("everysec", "D1")):
                server = systems.redis(appendfsync)
                try:
                    requests = plan["redis_requests"]
                    measure(results, "publish", f"single messages, 50 connections, {case_suffix}",
                            f"Redis XADD appendfsync={appendfsync}", durability, server, payload_bytes,
                            lambda: redis_benchmark(server.port, 50, 1, payload_bytes, requests // 10, partitions, seconds))
                    measure(results, "publish", f"pipelined 64 deep, 50 connections, {case_suffix}",
                            f"Redis XADD appendfsync={appendfsync}", durability, server, payload_bytes,
                            lambda: redis_benchmark(server.port, 50, 64, payload_bytes, requests, partitions, seconds))
                finally:
                    stop(server)
            # NATS JetStream 2.9 (acks before fsync: D1), async publish window 1000.
            server = systems.nats()
            try:
                measure(results, "publish", f"async publish, window 1000, {case_suffix}", "NATS JetStream", "D1",
                        server, payload_bytes,
                        lambda: node_client("peers.mjs", ["nats-publish", f"nats://127.0.0.1:{server.port}", payload_bytes,
                                                          plan["node_messages"], seconds, 1000, max(1, partitions)],
                                            seconds))
            finally:
                stop(server)
            if partitions == 1:
                # Mosquitto 2.0 QoS 1 (acks from memory: D1).
                server = systems.mosquitto()
                try:
                    measure(results, "publish", f"MQTT QoS 1, window 256, {case_suffix}", "Mosquitto", "D1", server,
                            payload_bytes,
                            lambda: node_client("peers.mjs", ["mqtt-publish", f"mqtt://127.0.0.1:{server.port}",
                                                              payload_bytes, plan["node_messages"], seconds, 256], seconds))
                finally:
                    stop(server)
                # PostgreSQL 15, synchronous_commit=on (D2).
                server = systems.postgres()
                if server is not None:
                    try:
                        measure(results, "publish", f"1 row per transaction, 8 clients, {case_suffix}",
                                "PostgreSQL", "D2", server, payload_bytes,
                                lambda: pgbench(server, payload_bytes, 1, 8, seconds))
                        measure(results, "publish", f"100 rows per transaction, 4 clients, {case_suffix}",
                                "PostgreSQL", "D2", server, payload_bytes,
                                lambda: pgbench(server, payload_bytes, 100, 4, seconds))
                    finally:
                        stop(server)


def latency_workloads(systems: Systems, results: Results, plan: dict) -> None:
    """W3: latency at fixed rates, sends scheduled by time (D2 on both sides)."""
    seconds = plan["latency_seconds"]
    for rate in plan["rates"]:
        case = f"{rate:,} msgs/s, 100 B"
        server = systems.msgstore()
        try:
            if server:
                msgstore_stream(server.port, "latency", 1, "always")
            measure(results, "latency", case, "msgstore HTTP", "D2", server, 100,
                    lambda: netbench(server.port, "http", seconds, connections=64, rate=rate, payload_bytes=100,
                                     stream="latency", subject="latency.a", warmup_seconds=1))
        finally:
            stop(server)
        server = systems.redis("always")
        try:
            measure(results, "latency", case, "Redis XADD appendfsync=always", "D2", server, 100,
                    lambda: netbench(server.port, "resp", seconds, connections=64, rate=rate, payload_bytes=100,
                                     warmup_seconds=1))
        finally:
            stop(server)


def in_parallel(main_action, side_action) -> tuple[dict, dict]:
    """Runs side_action in a thread while main_action runs here; returns both results."""
    side_result: dict = {}
    thread = threading.Thread(target=lambda: side_result.update(side_action()))
    thread.start()
    main_result = main_action()
    thread.join()
    return main_result, side_result


def consume_workloads(systems: Systems, results: Results, plan: dict) -> None:
    """W4: durable consumer fetch+ack and replay of a backlog, msgstore against NATS JetStream,
    with a producer publishing at a fixed rate (fsync before ack) while msgstore's backlog drains."""
    count, replay_count = plan["consume_messages"], plan["replay_messages"]
    fill_count = max(count, replay_count)
    seconds, replay_seconds = plan["seconds"] * 3, plan["replay_seconds"]
    server = systems.msgstore()
    try:
        if server is None:
            raise SkipSystem
        msgstore_stream(server.port, "backlog", 1, "never")
        msgstore_stream(server.port, "producer", 1, "always")
        fill = netbench(server.port, "http", replay_seconds, connections=8, batch=1000, payload_bytes=100,
                        requests_max=max(1, fill_count // 1000), stream="backlog", subject="backlog.a")
        if "error" in fill:
            results.add("consume", "backlog fill", "msgstore HTTP", "D1", fill, server, 0, 100)
        else:
            measure(results, "consume", f"durable consumer fetch + ack, {count:,} x 100 B", "msgstore HTTP", "D1",
                    server, 100, lambda: node_client("msgstore.mjs", ["consume", f"http://127.0.0.1:{server.port}",
                                                                      "backlog", count, seconds, 1000], seconds))
            before = server.cpu_seconds()
            replay, producer = in_parallel(
                lambda: node_client("msgstore.mjs", ["ws-replay", f"http://127.0.0.1:{server.port}", "backlog",
                                                     replay_count, replay_seconds, 10000], replay_seconds),
                lambda: netbench(server.port, "http", plan["drain_producer_seconds"], connections=8, rate=1000,
                                 payload_bytes=100, stream="producer", subject="producer.a", warmup_seconds=1))
            results.add("consume", f"replay (WebSocket), {replay_count:,} x 100 B", "msgstore WebSocket", "D1",
                        replay, server, before, 100)
            results.add("drain", f"producer at 1,000 msgs/s during the replay of {replay_count:,} x 100 B",
                        "msgstore HTTP", "D2", producer, None, 0, 100)
    except SkipSystem:
        pass
    finally:
        stop(server)
    server = systems.nats()
    try:
        if server is None:
            raise SkipSystem
        fill = node_client("peers.mjs", ["nats-publish", f"nats://127.0.0.1:{server.port}", 100, fill_count,
                                         replay_seconds, 1000, 1], replay_seconds)
        if "error" in fill:
            results.add("consume", "backlog fill", "NATS JetStream", "D1", fill, server, 0, 100)
        else:
            measure(results, "consume", f"durable consumer fetch + ack, {count:,} x 100 B", "NATS JetStream", "D1",
                    server, 100, lambda: node_client("peers.mjs", ["nats-pull-ack", f"nats://127.0.0.1:{server.port}",
                                                                   count, seconds, 1000], seconds))
            measure(results, "consume", f"replay (ordered consumer), {replay_count:,} x 100 B", "NATS JetStream", "D1",
                    server, 100, lambda: node_client("peers.mjs", ["nats-replay", f"nats://127.0.0.1:{server.port}",
                                                                   replay_count, replay_seconds], replay_seconds))
    except SkipSystem:
        pass
    finally:
        stop(server)


def cold_workloads(systems: Systems, results: Results, plan: dict) -> None:
    """W4, cold: replay of a backlog larger than the server's page cache. Each server runs in a
    memory cgroup (plan["cold_limit_mebibytes"], page cache included) and the backlog is several
    times that size, so the replay reads from the disk. Skipped, with the reason in the report,
    where cgroups cannot be written."""
    count, limit, seconds = plan["cold_messages"], plan["cold_limit_mebibytes"], plan["replay_seconds"]
    case = f"replay beyond the page cache (server memory {limit} MiB), {count:,} x 100 B"
    for system in ("msgstore", "nats"):
        server = systems.msgstore() if system == "msgstore" else systems.nats()
        if server is None:
            continue
        try:
            name = "msgstore WebSocket" if system == "msgstore" else "NATS JetStream"
            if not server.limit_memory(limit):
                results.add("consume", case, name, "D1", {"error": "memory cgroups are not writable here (needs root "
                                                                    "and a memory controller); not measured"}, None, 0, 100)
                continue
            if system == "msgstore":
                msgstore_stream(server.port, "cold", 1, "never")
                fill = netbench(server.port, "http", seconds, connections=8, batch=1000, payload_bytes=100,
                                requests_max=max(1, count // 1000), stream="cold", subject="cold.a")
                replay = ["msgstore.mjs", ["ws-replay", f"http://127.0.0.1:{server.port}", "cold", count, seconds, 10000]]
            else:
                fill = node_client("peers.mjs", ["nats-publish", f"nats://127.0.0.1:{server.port}", 100, count, seconds,
                                                 1000, 1], seconds)
                replay = ["peers.mjs", ["nats-replay", f"nats://127.0.0.1:{server.port}", count, seconds]]
            if "error" in fill:
                results.add("consume", case + " (fill)", name, "D1", fill, server, 0, 100)
                continue
            measure(results, "consume", case, name, "D1", server, 100,
                    lambda: node_client(replay[0], replay[1], seconds))
        finally:
            stop(server)


def idle_workloads(systems: Systems, results: Results, plan: dict) -> None:
    """Many idle WebSocket subscribers held open while producers publish at full rate (msgstore only):
    no errors allowed; the server's peak resident memory is reported."""
    connections, seconds = plan["idle_connections"], plan["seconds"]
    server = systems.msgstore(["--max-connections", str(connections * 2 + 100)])
    if server is None:
        return
    try:
        msgstore_stream(server.port, "idle", 1, "always")
        hold_seconds = seconds + 20  # the connections open first, then the publishing runs inside the hold
        before = server.cpu_seconds()
        holders: dict = {}
        thread = threading.Thread(target=lambda: holders.update(node_client(
            "msgstore.mjs", ["ws-idle", f"http://127.0.0.1:{server.port}", "idle", connections, hold_seconds],
            hold_seconds)))
        thread.start()
        time.sleep(min(10, hold_seconds / 3))
        publish = netbench(server.port, "http", seconds, connections=50, payload_bytes=100, stream="idle",
                           subject="idle.a")
        thread.join()
        publish["idle_connections_opened"] = holders.get("connections_opened", 0)
        publish["idle_connection_errors"] = holders.get("errors", holders.get("error", "no result"))
        if holders.get("connections_opened", 0) < connections or holders.get("errors", 1) != 0:
            publish["failed"] = True
            publish["failure"] = (f"{holders.get('connections_opened', 0)} of {connections} idle subscribers opened, "
                                  f"errors: {publish['idle_connection_errors']}")
        results.add("idle", f"{connections:,} idle WebSocket subscribers + single publishes, 50 connections, 100 B",
                    "msgstore HTTP", "D2", publish, server, before, 100)
    finally:
        stop(server)


EMBEDDED_REPORTS: list[Path] = []


def embedded_workloads(systems: Systems, results: Results, plan: dict) -> None:
    """W1: embedded append and replay, msgstore library against SQLite and a bare write+fdatasync
    floor: bench/msgstore_bench, whose own report (goals, medians, ratios) is included whole."""
    if not wanted("msgstore"):
        return
    output = systems.scratch / f"embedded-{len(EMBEDDED_REPORTS) + 1}.md"
    command = [str(BUILD / "bench" / "msgstore_bench"), "--output", str(output), "--dir", str(systems.fresh("embedded"))]
    if plan["mode"] == "quick":
        command += ["--quick"]
    else:
        command += ["--repetitions", "3"]
    log("embedded: " + " ".join(command[1:]))
    completed = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if output.exists():
        EMBEDDED_REPORTS.append(output)
    else:
        log(f"embedded: msgstore_bench failed: {completed.stderr.strip()[-300:]}")


WORKLOADS = {"embedded": embedded_workloads, "publish": publish_workloads, "latency": latency_workloads,
             "consume": consume_workloads, "cold": cold_workloads, "idle": idle_workloads}


# ----------------------------------------------------------------------------- the report

def median_and_spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def summarize(rows: list[dict]) -> list[dict]:
    """Groups the rounds of each (workload, case, system) into medians and spreads."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["workload"], row["case"], row["system"], row["durability"]), []).append(row)
    summary = []
    for (workload, case, system, durability), runs in groups.items():
        good = [run for run in runs if "error" not in run and not run.get("failed")]
        entry = {"workload": workload, "case": case, "system": system, "durability": durability,
                 "runs": len(runs), "failed_runs": len(runs) - len(good),
                 "errors": sorted({run["error"] for run in runs if "error" in run}
                                  | {run["failure"] for run in runs if "failure" in run})}
        if good:
            entry["rate"] = median_and_spread([run["messages_per_second"] for run in good])
            latencies = [run["latency_us"] for run in good if run.get("latency_us")]
            if latencies:
                entry["latency_us"] = {key: statistics.median([latency[key] for latency in latencies if key in latency])
                                       for key in latencies[0]}
            cpu = [run["server_cpu_seconds_per_gigabyte"] for run in good if run.get("server_cpu_seconds_per_gigabyte")]
            if cpu:
                entry["cpu_seconds_per_gigabyte"] = statistics.median(cpu)
            memory = [run.get("server_peak_resident_mebibytes", 0) for run in good]
            entry["peak_resident_mebibytes"] = max(memory) if memory else 0
        summary.append(entry)
    return summary


def ratio_text(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "-"


def write_plots(summary: list[dict], directory: Path, stem: str) -> list[str]:
    """Throughput bars per workload and latency percentile curves, with gnuplot. Returns file names."""
    if shutil.which("gnuplot") is None:
        return []
    made = []
    for workload in ("publish", "consume"):
        entries = [entry for entry in summary if entry["workload"] == workload and "rate" in entry]
        if not entries:
            continue
        data = directory / f"{stem}-{workload}.dat"
        with open(data, "w") as handle:
            for index, entry in enumerate(entries):
                label = f"{entry['system']} [{entry['durability']}] {entry['case']}".replace('"', "'")
                colour = 1 if entry["system"].startswith("msgstore") else (2 if entry["durability"] == "D2" else 3)
                handle.write(f'{index} "{label}" {entry["rate"][0]:.0f} {colour}\n')
        png = f"{stem}-{workload}.png"
        height = max(400, 22 * len(entries) + 120)
        script = f"""
set terminal pngcairo size 1400,{height} font ",9"
set output "{directory / png}"
set style fill solid 0.8
set linetype 1 lc rgb "#1f5fbf"
set linetype 2 lc rgb "#c0392b"
set linetype 3 lc rgb "#8c8c8c"
set boxwidth 0.7
set yrange [-1:{len(entries)}]
set ytics nomirror
set xlabel "messages per second"
set grid x
set key off
set title "{workload}: messages per second, median of rounds (blue: msgstore; red: peers D2, after fdatasync; grey: peers D1, after write)"
plot "{data}" using (0):1:(0):3:($1-0.35):($1+0.35):4:ytic(2) with boxxyerror lc variable
"""
        subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        if (directory / png).exists():
            made.append(png)
        data.unlink(missing_ok=True)
    entries = [entry for entry in summary if entry["workload"] == "latency" and entry.get("latency_us")]
    if entries:
        data = directory / f"{stem}-latency.dat"
        series = []
        with open(data, "w") as handle:
            for entry in entries:
                handle.write(f"# {entry['system']} {entry['case']}\n")
                for index, key in enumerate(("p50", "p90", "p99", "p999", "max")):
                    if key in entry["latency_us"]:
                        handle.write(f"{index} {max(1.0, entry['latency_us'][key]):.1f}\n")
                handle.write("\n\n")
                series.append(f"{entry['system']} @ {entry['case']}".replace('"', "'"))
        png = f"{stem}-latency.png"
        plots = ", ".join(f'"{data}" index {index} using 1:2 with linespoints title "{title}"'
                          for index, title in enumerate(series))
        script = f"""
set terminal pngcairo size 1200,700 font ",10"
set output "{directory / png}"
set title "publish latency at fixed rates, fsync before ack (D2), from the scheduled send time"
set logscale y
set ylabel "microseconds"
set xtics ("p50" 0, "p90" 1, "p99" 2, "p99.9" 3, "max" 4)
set grid
set key outside right
plot {plots}
"""
        subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        if (directory / png).exists():
            made.append(png)
        data.unlink(missing_ok=True)
    return made


def find(summary: list[dict], workload: str, system: str, case_start: str, durability: str) -> dict | None:
    for entry in summary:
        if (entry["workload"] == workload and entry["system"] == system and entry["durability"] == durability
                and entry["case"].startswith(case_start)):
            return entry
    return None


def goal_rows(summary: list[dict], rows: list[dict], sync_p99: float | None, rtt_p99: float | None,
              ideal_p99: dict) -> list[str]:
    """The server issue's six goals, each a ratio measured in this run (100 B, 1 partition)."""
    lines = ["## Goals of the server (msgstore serve), this run", "",
             "| goal | msgstore | peer or limit | ratio | target | verdict |", "|---|---|---|---|---|---|"]

    def throughput(title, ours, theirs, target):
        if not ours or not theirs or "rate" not in ours or "rate" not in theirs:
            lines.append(f"| {title} | {'-' if not ours else ours.get('rate', ['failed'])[0]} | "
                         f"{'-' if not theirs else theirs.get('rate', ['failed'])[0]} | - | {target}x | not measured |")
            return
        ratio = ours["rate"][0] / theirs["rate"][0]
        lines.append(f"| {title} | {ours['rate'][0]:,.0f} msgs/s | {theirs['rate'][0]:,.0f} msgs/s ({theirs['system']}) "
                     f"| {ratio:.2f}x | >= {target}x | {'met' if ratio >= target else 'NOT met'} |")

    size = "100 B, 1 partition"
    throughput("1. single publish, 50 keep-alive connections, fsync always vs Redis XADD appendfsync=always",
               find(summary, "publish", "msgstore HTTP", "single messages, 50 connections, " + size, "D2"),
               find(summary, "publish", "Redis XADD appendfsync=always", "single messages, 50 connections, " + size, "D2"), 1)
    throughput("2. batches of 1000 x 100 B, fsync always vs Redis XADD pipelined 64 deep",
               find(summary, "publish", "msgstore HTTP", "batches of 1000, 50 connections, " + size, "D2"),
               find(summary, "publish", "Redis XADD appendfsync=always", "pipelined 64 deep, 50 connections, " + size, "D2"), 1.5)
    throughput("3. durable consumer fetch + ack vs NATS JetStream pull consumer, explicit acks",
               find(summary, "consume", "msgstore HTTP", "durable consumer", "D1"),
               find(summary, "consume", "NATS JetStream", "durable consumer", "D1"), 2)
    throughput("4. WebSocket replay vs NATS JetStream ordered consumer",
               find(summary, "consume", "msgstore WebSocket", "replay", "D1"),
               find(summary, "consume", "NATS JetStream", "replay", "D1"), 2)
    latency = find(summary, "latency", "msgstore HTTP", "10,000 msgs/s", "D2")
    if latency and latency.get("latency_us", {}).get("p99") and sync_p99 and rtt_p99:
        limit = sync_p99 + rtt_p99
        ratio = latency["latency_us"]["p99"] / limit
        lines.append(f"| 5. publish p99 at 10,000 msgs/s, fsync always, vs (loopback RTT p99 + fdatasync p99) | "
                     f"{latency['latency_us']['p99']:,.0f} us | {limit:,.0f} us | {ratio:.2f}x | <= 3x | "
                     f"{'met' if ratio <= 3 else 'NOT met'} |")
        for key, title in (("ideal_group_commit_us", "5 (floor). the ideal group commit at 10,000 requests/s "
                             "(probe: no network, no server CPU) + RTT p99, same bound"),
                           ("ideal_group_commit_busy_us", "5 (floor, one CPU busy). the same beside a spinning thread")):
            if key in ideal_p99:
                floor = ideal_p99[key] + rtt_p99
                lines.append(f"| {title} | {floor:,.0f} us | {limit:,.0f} us | {floor / limit:.2f}x | <= 3x | information |")
    else:
        lines.append("| 5. publish p99 at 10,000 msgs/s vs (RTT p99 + fdatasync p99) | - | - | - | <= 3x | not measured |")
    idle_runs = [row for row in rows if row["workload"] == "idle"]
    if idle_runs:
        errors = sum(int(row.get("idle_connection_errors", 1)) if str(row.get("idle_connection_errors", "x")).isdigit()
                     else 1 for row in idle_runs)
        opened = min(row.get("idle_connections_opened", 0) for row in idle_runs)
        rss = max(row.get("server_peak_resident_mebibytes", 0) for row in idle_runs)
        rate = statistics.median([row.get("messages_per_second", 0) for row in idle_runs])
        publish_errors = sum(1 for row in idle_runs if "error" in row)
        clean = errors == 0 and publish_errors == 0 and opened >= plan_idle_connections(idle_runs)
        lines.append(f"| 6. {plan_idle_connections(idle_runs):,} idle WebSocket subscribers + full-rate publishing | "
                     f"{opened:,} opened (fewest in a round), {errors} subscriber errors, {publish_errors} publish errors, "
                     f"{rate:,.0f} msgs/s, server peak RSS {rss:.0f} MiB | - | - | no errors | "
                     f"{'met' if clean else 'NOT met'} |")
    else:
        lines.append("| 6. idle WebSocket subscribers + full-rate publishing | - | - | - | no errors | not measured |")
    lines.append("")
    return lines


def plan_idle_connections(idle_runs: list[dict]) -> int:
    case = idle_runs[0]["case"]
    return int(case.split(" ", 1)[0].replace(",", ""))


def write_report(summary: list[dict], probes: list[dict], plan: dict, label: str, path: Path, plots: list[str],
                 rows: list[dict]) -> None:
    lines = [f"# msgstore and its peers, side by side: {path.stem}", ""]
    lines += [f"Machine: {label} ({os.cpu_count()} CPUs). Mode: {plan['mode']}, {plan['rounds']} round(s); every "
              "figure is the median over rounds with the spread (min..max). Durability classes: D1 = acknowledged "
              "after write() (survives kill -9), D2 = acknowledged after fdatasync (survives power loss). Ratios "
              "compare systems within one class only. " +
              (f"Pinned (--pin): every server on CPU {PIN['server'][-1]}, netbench on CPU {PIN['client'][-1]} "
               "(other load tools unpinned). " if PIN else
               "The load generator shares the CPUs with the server under test. ") +
              "Produced by `make bench` (bench/compare.py).", ""]
    sync = rtt = None
    ideal: dict = {}
    if probes:
        sync = statistics.median([probe["fdatasync_us"]["p99"] for probe in probes])
        sync50 = statistics.median([probe["fdatasync_us"]["p50"] for probe in probes])
        rtt = statistics.median([probe["loopback_rtt_us"]["p99"] for probe in probes])
        rtt50 = statistics.median([probe["loopback_rtt_us"]["p50"] for probe in probes])
        lines += ["## Physical limits, same run", "",
                  "| figure | p50 | p99 |", "|---|---|---|",
                  f"| fdatasync after a 4 KiB append | {sync50:.0f} us | {sync:.0f} us |",
                  f"| loopback round trip, 100 B | {rtt50:.1f} us | {rtt:.1f} us |"]
        ideal = {}
        for key, title in (("ideal_group_commit_us", "ideal group commit at 10,000 requests/s: 100 B per request into "
                            "preallocated zeros, fdatasync back to back, latency from the due time (bench/net/probe.cc)"),
                           ("ideal_group_commit_busy_us", "the same beside one thread spinning on the other CPU "
                            "(as busy as the load generator)")):
            figures = [probe[key] for probe in probes if key in probe]
            if figures:
                ideal[key] = statistics.median([figure["p99"] for figure in figures])
                lines.append(f"| {title} | {statistics.median([figure['p50'] for figure in figures]):.0f} us | "
                             f"{ideal[key]:.0f} us |")
        lines.append("")
    lines += goal_rows(summary, rows, sync, rtt, ideal)
    for workload, title in (("publish", "Networked publish at maximum rate"),
                            ("latency", "Publish latency at fixed rates (sends scheduled by time)"),
                            ("consume", "Durable consumer fetch + ack, and replay of a backlog"),
                            ("drain", "Producer latency while a backlog drains (sends scheduled by time)"),
                            ("idle", "Idle WebSocket subscribers while publishing at full rate")):
        entries = [entry for entry in summary if entry["workload"] == workload]
        if not entries:
            continue
        lines += [f"## {title}", "", "| case | system | class | msgs/s median (min..max) | MB/s | latency p50 / p99 / p99.9 / max (us) "
                  "| server CPU s/GB | server peak RSS MiB | msgstore ratio |", "|---|---|---|---|---|---|---|---|---|"]
        for entry in entries:
            if "rate" not in entry:
                lines.append(f"| {entry['case']} | {entry['system']} | {entry['durability']} | failed: "
                             f"{'; '.join(entry['errors'])[:200]} | | | | | |")
                continue
            rate = entry["rate"]
            payload = 1024 if "1024 B" in entry["case"] else 100
            latency = entry.get("latency_us", {})
            latency_text = " / ".join(f"{latency[key]:.0f}" for key in ("p50", "p99", "p999", "max") if key in latency)
            # The ratio msgstore/peer: for each peer row, against the best msgstore row of the same
            # case family (same sizes and partitions) and class.
            ratio = ""
            if not entry["system"].startswith("msgstore"):
                # publish: the same payload size and partition count (the last two parts of the case)
                family = ", ".join(entry["case"].split(", ")[-2:]) if workload == "publish" else entry["case"]
                if workload == "consume":
                    family = entry["case"].split(",", 1)[0].split(" (")[0]
                candidates = [other for other in entries if other["system"].startswith("msgstore") and "rate" in other
                              and other["durability"] == entry["durability"]
                              and (other["case"].endswith(family) if workload == "publish"
                                   else other["case"] == entry["case"] if workload == "latency"
                                   else other["case"].split(",", 1)[0].split(" (")[0] == family)]
                if workload == "publish":
                    # Like with like: one message per request against msgstore's single publishes;
                    # pipelined, windowed or multi-row publishes against msgstore's batches.
                    single = entry["case"].startswith(("single messages", "1 row per transaction"))
                    candidates = [other for other in candidates
                                  if other["case"].startswith("single messages") == single]
                if candidates:
                    if workload == "latency" and latency.get("p99") and candidates[0].get("latency_us", {}).get("p99"):
                        ratio = f"p99 {candidates[0]['latency_us']['p99'] / latency['p99']:.2f}x (lower is better)"
                    else:
                        best = max(candidates, key=lambda other: other["rate"][0])
                        ratio = f"{ratio_text(best['rate'][0], rate[0])} ({best['system']}, {best['case'].split(',')[0]})"
            cpu = entry.get("cpu_seconds_per_gigabyte")
            lines.append(f"| {entry['case']} | {entry['system']} | {entry['durability']} | {rate[0]:,.0f} "
                         f"({rate[1]:,.0f}..{rate[2]:,.0f}) | {rate[0] * payload / 1e6:.1f} | {latency_text} | "
                         f"{'' if cpu is None else f'{cpu:.0f}'} | {entry.get('peak_resident_mebibytes', 0):.0f} | {ratio} |")
        lines.append("")
    for index, embedded in enumerate(EMBEDDED_REPORTS):
        lines += [f"## Embedded append and replay (msgstore_bench, round {index + 1})", ""]
        for line in embedded.read_text().splitlines():
            lines.append("#" + line if line.startswith("#") else line)
        lines.append("")
    if plots:
        lines += ["## Plots", ""] + [f"![{plot}]({plot})" for plot in plots] + [""]
    lines += ["## Notes", "",
              "- msgstore is driven by bench/net/netbench.cc (C++, epoll, keep-alive HTTP/1.1); Redis by "
              "redis-benchmark for maximum rates and by the same netbench (RESP) for fixed-rate latency; NATS and "
              "Mosquitto by their npm client libraries (bench/clients/peers.mjs); PostgreSQL by pgbench.",
              "- CPU s/GB: server CPU time (user + system, from /proc) during the workload per GB of payload moved.",
              "- Peak RSS: the server's VmHWM since it started (each system starts fresh per case).", ""]
    path.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs, one round: under 5 minutes")
    parser.add_argument("--rounds", type=int, help="rounds of every workload (default 1 quick, 3 full)")
    parser.add_argument("--label", default=None, help="machine label for the file name (never a host name)")
    parser.add_argument("--only", default="", help="comma-separated workloads: " + ",".join(WORKLOADS))
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated systems: " + ",".join(SYSTEMS))
    parser.add_argument("--pin", action="store_true",
                        help="servers on the last CPU, netbench on the others (taskset); needs 2 CPUs or more")
    arguments = parser.parse_args()
    if arguments.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2 or not shutil.which("taskset"):
            parser.error("--pin needs at least 2 CPUs and taskset (util-linux)")
        PIN["server"] = ["taskset", "-c", str(cpus[-1])]
        PIN["client"] = ["taskset", "-c", ",".join(str(cpu) for cpu in cpus[:-1])]

    quick = arguments.quick
    plan = {"mode": "quick" if quick else "full", "rounds": arguments.rounds or (1 if quick else 3),
            "seconds": 3 if quick else 10, "latency_seconds": 5 if quick else 15,
            "sizes": [100] if quick else [100, 1024], "partitions": [1] if quick else [1, 16],
            "rates": [1000, 10000] if quick else [1000, 10000, 50000],
            "redis_requests": 300_000 if quick else 2_000_000, "node_messages": 200_000 if quick else 2_000_000,
            "consume_messages": 100_000 if quick else 1_000_000,
            "replay_messages": 200_000 if quick else 10_000_000, "replay_seconds": 30 if quick else 180,
            "drain_producer_seconds": 3 if quick else 20, "idle_connections": 200 if quick else 2000,
            "cold_messages": 2_000_000 if quick else 6_000_000, "cold_limit_mebibytes": 64 if quick else 256}
    selected = [name for name in (arguments.only.split(",") if arguments.only else WORKLOADS) if name]
    for name in selected:
        if name not in WORKLOADS:
            parser.error(f"unknown workload {name}")
    WANTED.clear()
    WANTED.update(name for name in arguments.systems.split(",") if name)
    if not WANTED <= set(SYSTEMS):
        parser.error(f"unknown system in {arguments.systems}")
    for tool in (MSGSTORE, NETBENCH, PROBE):
        if not tool.exists():
            parser.error(f"{tool.relative_to(REPOSITORY)} is missing: run `make bench`, which builds it")

    label = arguments.label
    if label is None:
        model = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "")
        vendor = next((name for name in ("epyc", "xeon", "ryzen", "intel", "amd") if name in model.lower()), "cpu")
        label = f"{os.cpu_count()}vcpu-{vendor}"
    scratch = REPOSITORY / "bench" / "results" / "tmp" / "compare"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(130)))
    systems, results, probes = Systems(scratch), Results(), []
    try:
        for round_index in range(plan["rounds"]):
            log(f"round {round_index + 1} of {plan['rounds']}")
            probe = run_json([str(PROBE), "--dir", str(scratch), "--syncs", "500" if quick else "2000",
                              "--round-trips", "5000" if quick else "20000", "--group-commit-rate", "10000",
                              "--group-commit-seconds", str(plan["latency_seconds"])], 300)
            if "error" not in probe:
                probes.append(probe)
            for name in selected:
                if name == "embedded" and round_index > 0:
                    continue  # msgstore_bench repeats internally
                WORKLOADS[name](systems, results, plan)
    except KeyboardInterrupt:
        log("interrupted; writing what was measured")
    finally:
        stop_all()
    summary = summarize(results.rows)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    output_directory = REPOSITORY / "bench" / "results"
    stem = f"{date}-{label}-compare{'-quick' if quick else ''}"
    number = 2
    while (output_directory / f"{stem}.md").exists():
        stem = f"{date}-{label}-compare{'-quick' if quick else ''}-{number}"
        number += 1
    plots = write_plots(summary, output_directory, stem)
    report = output_directory / f"{stem}.md"
    write_report(summary, probes, plan, label, report, plots, results.rows)
    (scratch / "raw.json").write_text(json.dumps(results.rows, indent=1))
    shutil.copy(scratch / "raw.json", output_directory / f"{stem}.json")
    log(f"report: {report.relative_to(REPOSITORY)}")
    print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
