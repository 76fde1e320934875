"""The Ansible playbook in deploy/: syntax, ansible-lint, and a real converge of this machine into a
throw-away prefix through a local connection (tasks that need packages, users or systemd as PID 1 skipped,
and named), run twice to show the second run changes nothing."""

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests import services
from tools.deploy_render import DEPLOY, ROOT

DEPLOY_BIN = ROOT / ".venv-deploy" / "bin"
UNITS = ("storefront-web.service", "storefront-stream.service", "storefront-worker@.service")
HARDENING = ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=yes")


def tool(name: str) -> str:
    path = DEPLOY_BIN / name
    if not path.exists():
        services.unavailable(f"{name} (make deploy-venv)", FileNotFoundError(path))
    return str(path)


def ansible_env(**extra) -> dict:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_CONFIG": str(DEPLOY / "ansible.cfg"), **extra}
    env["PATH"] = f"{DEPLOY_BIN}:/usr/sbin:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def run_in_deploy(*command: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=DEPLOY, env=ansible_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def test_playbook_passes_syntax_check():
    result = run_in_deploy(tool("ansible-playbook"), "--syntax-check", "site.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_playbook_and_roles_pass_ansible_lint_production_profile():
    result = run_in_deploy(tool("ansible-lint"), "--nocolor", "--profile", "production", "site.yml")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def head_commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?P<name>.+)\] \**$")
RESULT = re.compile(r"^(?P<status>ok|changed|skipping|fatal|failed): \[loopback\]")
RECAP = re.compile(r"^loopback\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)")

# Every task that installs packages, makes users, edits Debian's own files or needs systemd as PID 1.
SYSTEM_TASKS = (
    "Install",
    "service group",
    "The service user",
    "Reload",
    "Debian's",
    "Check the whole configuration",
    "Load and enable",
    "Enable this host's workers",
    "Enable the clock",
    "Restart",
    "Wait until this node",
)


def converge(prefix: Path, database: str) -> tuple[dict[str, set[str]], int]:
    """Run site.yml against this machine; return each task's outcomes and how many tasks changed."""
    result = subprocess.run(
        [
            *(tool("ansible-playbook"), "-i", "inventory/loopback.yml", "site.yml"),
            *("-e", f"storefront_prefix={prefix}", "-e", f"storefront_repo={ROOT}"),
            *("-e", f"storefront_version={head_commit()}", "-e", f"storefront_db_name={database}"),
        ],
        cwd=DEPLOY,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    outcomes: dict[str, set[str]] = {}
    task, changed = None, None
    for line in result.stdout.splitlines():
        if found := TASK.match(line):
            task = found["name"]
            outcomes.setdefault(task, set())
        elif (found := RESULT.match(line)) and task:
            outcomes[task].add(found["status"])
        elif found := RECAP.match(line):
            changed = int(found["changed"])
    assert changed is not None, result.stdout[-3000:]
    return outcomes, changed


def self_signed(prefix: Path) -> None:
    live = prefix / "etc" / "letsencrypt" / "live" / "localhost"
    live.mkdir(parents=True)
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
            ),
            *("-keyout", str(live / "privkey.pem"), "-out", str(live / "fullchain.pem")),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def prefix(tmp_path):
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        services.unavailable("nginx (make nginx-deps)", FileNotFoundError("nginx"))
    database = f"storefront_ansible_{services.run_suffix()}"
    services.drop_database(database)
    self_signed(tmp_path)
    yield tmp_path, database
    services.drop_database(database)


def test_loopback_converge_builds_the_release_and_a_second_run_changes_nothing(prefix, capsys):
    root, database = prefix
    first, _ = converge(root, database)
    skipped = sorted(name for name, seen in first.items() if seen == {"skipping"})
    pid1_is_systemd = Path("/proc/1/comm").read_text().strip() == "systemd"
    with capsys.disabled():
        print(f"\nsystemd is PID 1: {pid1_is_systemd}; tasks skipped:\n  " + "\n  ".join(skipped))
    system_tasks = [name for name in first if any(word in name for word in SYSTEM_TASKS)]
    assert len(system_tasks) >= 10
    # Nothing of the system was touched; everything else ran (the role exists already: it is postgres).
    assert set(system_tasks) <= set(skipped)
    assert set(skipped) - set(system_tasks) <= {"postgres : Create the application's role"}
    assert all(seen and seen <= {"ok", "changed"} for name, seen in first.items() if name not in skipped)

    current = root / "opt" / "storefront" / "current"
    assert current.is_symlink() and (current / "wsgi.py").exists()
    assert (current / ".venv" / "bin" / "gunicorn").exists() and (current / ".venv" / "bin" / "rq").exists()
    env_file = root / "etc" / "storefront" / "storefront.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    settings = env_file.read_text()
    assert "target_session_attrs=read-write" in settings and 'STOREFRONT_ENV="production"' in settings

    units = root / "etc" / "systemd" / "system"
    for unit in UNITS:
        body = (units / unit).read_text()
        assert f"EnvironmentFile={env_file}" in body
        assert "User=storefront" in body and "Restart=always" in body
        for line in HARDENING:
            assert line in body, f"{unit} lacks {line}"
        binary = body.split("ExecStart=", 1)[1].split()[0]
        assert Path(binary).exists(), f"{unit} runs {binary}, which the release does not have"
    assert "ExecReload=/bin/kill -s HUP $MAINPID" in (units / "storefront-web.service").read_text()

    site = (root / "etc" / "nginx" / "sites-enabled" / "storefront.conf").read_text()
    assert "server 127.0.0.1:8000 " in site and "listen 127.0.0.1:8443 ssl http2;" in site

    engine = create_engine(services.PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()

    second, changed = converge(root, database)
    assert changed == 0, sorted(name for name, seen in second.items() if "changed" in seen)
