"""Config loading: every rule, every error line, and that no secret ever shows."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from harvester.cli import main
from harvester.config.describe import describe
from harvester.config.emulated import apply_emulator
from harvester.config.load import load_config
from harvester.config.regions import host_allowed
from harvester.config.schema import (
    ConfigFile,
    Credentials,
    DiscoverSettings,
    InstanceRef,
    Settings,
    json_schema_text,
)
from harvester.errors import ConfigError
from harvester.models import Secret

REPO = Path(__file__).resolve().parents[2]
SK = "SK-do-not-print-0123456789"
AK = "AK-visible-ish-000"
ENV = {"OS_ACCESS_KEY": AK, "OS_SECRET_KEY": SK}
PROJECT_ID = "0524e839a54847039e9b2b46e8aa788a"
INSTANCE_ID = "5560df16-cebf-4473-95c4-d1b573c16e79"

MINIMAL: dict[str, Any] = {
    "archive": {"root": "archive"},
    "auth": {"method": "aksk"},
    "projects": [{"name": "prod", "region": "eu-de", "project_id": PROJECT_ID}],
}


def base() -> dict[str, Any]:
    return copy.deepcopy(MINIMAL)


def write(tmp_path: Path, doc: object, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    return path


def load(tmp_path: Path, doc: object, env: dict[str, str] | None = None, **kw: Any) -> Settings:
    return load_config(write(tmp_path, doc), ENV if env is None else env, **kw)


def error(tmp_path: Path, doc: object, env: dict[str, str] | None = None, **kw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, doc, env, **kw)
    message = str(info.value)
    assert "\n" not in message
    assert SK not in message
    return message


# --------------------------------------------------------------------------- happy paths


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    """A three-section config runs with the defaults the docs promise."""
    s = load(tmp_path, base())
    assert s.archive.root == tmp_path / "archive"
    assert s.limits.api_concurrency == 32
    assert s.limits.requests_per_second == 200.0
    assert s.collect.days is None
    assert s.collect.enabled is True
    assert s.download.chunk_size == 1048576
    assert s.emulator is None
    p = s.projects[0]
    assert p.dcs_endpoint == "https://dcs.eu-de.otc.t-systems.com"
    assert p.iam_endpoint == "https://iam.eu-de.otc.t-systems.com/v3"
    assert p.instances is None
    assert p.discover == DiscoverSettings()


def test_settings_are_frozen_and_hashable(tmp_path: Path) -> None:
    """Settings cannot be changed by accident after validation."""
    s = load(tmp_path, base())
    with pytest.raises(ValidationError, match="frozen"):  # pydantic's frozen models (issue 9)
        s.limits.api_concurrency = 1
    assert hash(s) == hash(load(tmp_path, base()))
    demo = load(tmp_path, {"emulator": {"seed": 1}}, {})
    assert hash(demo) == hash(load(tmp_path, {"emulator": {"seed": 1}}, {}))


def test_credentials_come_from_environment_as_secrets(tmp_path: Path) -> None:
    """AK/SK are read from OS_ACCESS_KEY/OS_SECRET_KEY and never print."""
    s = load(tmp_path, base())
    assert s.credentials.access_key == Secret(AK)
    assert s.credentials.secret_key is not None
    assert s.credentials.secret_key.reveal() == SK
    assert s.credentials.source == "env"
    assert SK not in repr(s)


def test_example_config_loads(tmp_path: Path) -> None:
    """The shipped example is a valid config once the AK/SK variables are set."""
    s = load_config(REPO / "config" / "example.yaml", ENV)
    assert [p.name for p in s.projects] == ["prod", "analytics"]
    assert s.projects[0].instances is not None
    assert InstanceRef(id=INSTANCE_ID) in s.projects[0].instances
    assert s.projects[1].discover is not None
    assert dict(s.projects[1].discover.tags) == {"team": "data", "harvest-logs": "yes"}


def test_demo_config_loads_without_any_credentials() -> None:
    """The demo runs against the emulator with an empty environment and no secrets in the file."""
    s = load_config(REPO / "config" / "demo.yaml", {})
    assert s.emulator is not None
    assert s.emulator["seed"] == 42
    assert s.projects == ()
    assert s.credentials.source == "emulator"
    assert s.archive.root == REPO / "demo-archive"


def test_relative_archive_root_follows_the_config_file(tmp_path: Path) -> None:
    """A relative archive root is taken from the config's folder, not the working directory."""
    doc = base()
    doc["archive"]["root"] = "../data/archive"
    (tmp_path / "etc").mkdir()
    s = load_config(write(tmp_path / "etc", doc), ENV)
    assert s.archive.root == tmp_path / "data" / "archive"


def test_archive_root_expands_home_from_env(tmp_path: Path) -> None:
    """``~`` in archive.root means the HOME of the given environment."""
    doc = base()
    doc["archive"]["root"] = "~/logs"
    s = load(tmp_path, doc, {**ENV, "HOME": "/home/ops"})
    assert s.archive.root == Path("/home/ops/logs")


def test_region_defaults_for_eu_ch2_and_eu_nl(tmp_path: Path) -> None:
    """eu-ch2 uses its sc. endpoints and OBS host; eu-nl follows the common pattern."""
    doc = base()
    doc["projects"] = [
        {"name": "ch", "region": "eu-ch2", "project_id": PROJECT_ID},
        {"name": "nl", "region": "eu-nl", "project_id": PROJECT_ID},
    ]
    s = load(tmp_path, doc)
    ch, nl = s.projects
    assert ch.dcs_endpoint == "https://dcs.eu-ch2.sc.otc.t-systems.com"
    assert ch.iam_endpoint == "https://iam-pub.eu-ch2.sc.otc.t-systems.com/v3"
    assert nl.dcs_endpoint == "https://dcs.eu-nl.otc.t-systems.com"
    assert s.download.allowed_hosts == ("obs.eu-ch2.sc.otc.t-systems.com", "obs.eu-nl.otc.t-systems.com")


def test_instances_accept_strings_and_mappings(tmp_path: Path) -> None:
    """A UUID string is an id, any other string a name; {id:} and {name:} are explicit."""
    doc = base()
    doc["projects"][0]["instances"] = [
        INSTANCE_ID.upper(),
        "cache-01",
        {"id": INSTANCE_ID[:-1] + "0"},
        {"name": "x"},
    ]
    refs = load(tmp_path, doc).projects[0].instances
    assert refs == (
        InstanceRef(id=INSTANCE_ID),
        InstanceRef(name="cache-01"),
        InstanceRef(id=INSTANCE_ID[:-1] + "0"),
        InstanceRef(name="x"),
    )


def test_discover_by_tags_is_sorted_and_hashable(tmp_path: Path) -> None:
    """discover.tags become sorted pairs and the DCS filter string."""
    doc = base()
    doc["projects"][0]["discover"] = {"tags": {"team": "data", "env": "prod"}, "name": "redis"}
    d = load(tmp_path, doc).projects[0].discover
    assert d == DiscoverSettings(tags=(("env", "prod"), ("team", "data")), name="redis")
    assert d.tags_query == "env=prod,team=data"


def test_empty_discover_means_every_instance(tmp_path: Path) -> None:
    """``discover:`` with nothing under it takes every instance."""
    text = yaml.safe_dump(base()).replace("region: eu-de", "region: eu-de\n  discover:")
    assert load(tmp_path, text).projects[0].discover == DiscoverSettings()


def test_explicit_endpoints_allow_other_regions_and_loopback_http(tmp_path: Path) -> None:
    """A non-OTC region works with explicit endpoints; plain http only for loopback."""
    doc = base()
    doc["projects"][0].update(
        region="ap-southeast-1",
        endpoints={"dcs": "https://dcs.ap-southeast-1.myhuaweicloud.com/", "iam": "http://127.0.0.1:9/v3"},
    )
    s = load(tmp_path, doc)
    assert s.projects[0].dcs_endpoint == "https://dcs.ap-southeast-1.myhuaweicloud.com"
    assert s.download.allowed_hosts == ("obs.ap-southeast-1.myhuaweicloud.com",)


def test_password_method_reads_three_variables(tmp_path: Path) -> None:
    """method: password takes user, password and domain from the OpenStack variables."""
    doc = base()
    doc["auth"] = {"method": "password"}
    env = {"OS_USERNAME": "alice", "OS_PASSWORD": SK, "OS_USER_DOMAIN_NAME": "OTC-EU-DE-0001"}
    auth = load(tmp_path, doc, env).credentials
    assert (auth.username, auth.domain) == ("alice", "OTC-EU-DE-0001")
    assert auth.password == Secret(SK)
    assert auth.access_key is None


def test_token_method_and_renamed_variable(tmp_path: Path) -> None:
    """token_env renames the variable the token is read from."""
    doc = base()
    doc["auth"] = {"method": "token", "token_env": "MY_TOKEN"}
    assert load(tmp_path, doc, {"MY_TOKEN": SK}).credentials.token == Secret(SK)


def test_renamed_aksk_variables(tmp_path: Path) -> None:
    """access_key_env/secret_key_env point at other variables."""
    doc = base()
    doc["auth"].update(access_key_env="PROD_AK", secret_key_env="PROD_SK")
    auth = load(tmp_path, doc, {"PROD_AK": "a", "PROD_SK": "b"}).credentials
    assert (auth.access_key, auth.secret_key) == (Secret("a"), Secret("b"))


def test_auth_section_defaults_to_aksk_from_env(tmp_path: Path) -> None:
    """Without an auth section the OpenStack AK/SK variables are used."""
    doc = base()
    del doc["auth"]
    assert load(tmp_path, doc).credentials.method == "aksk"


def test_missing_credentials_allowed_when_not_required(tmp_path: Path) -> None:
    """`validate` can check a file on a machine without keys."""
    s = load(tmp_path, base(), {}, require_credentials=False)
    assert s.credentials.access_key is None
    assert "secret key: from $OS_SECRET_KEY (not set)" in describe(s)


def write_clouds(tmp_path: Path, auth: dict[str, str], name: str = "otc") -> dict[str, str]:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {name: {"auth": auth}, "other": {}}}), encoding="utf-8")
    return {"OS_CLIENT_CONFIG_FILE": str(clouds)}


def test_clouds_yaml_aksk_and_auth_url(tmp_path: Path) -> None:
    """A clouds.yaml entry with ak/sk selects aksk; its auth_url becomes the IAM endpoint."""
    env = write_clouds(tmp_path, {"ak": "a", "sk": SK, "auth_url": "https://iam.eu-de.otc.t-systems.com:443"})
    doc = base()
    doc["auth"] = {"cloud": "otc"}
    s = load(tmp_path, doc, env)
    assert s.credentials.method == "aksk"
    assert s.credentials.secret_key == Secret(SK)
    assert s.credentials.source == "clouds.yaml:otc"
    assert s.projects[0].iam_endpoint == "https://iam.eu-de.otc.t-systems.com:443/v3"
    assert SK not in describe(s)


def test_clouds_yaml_password_inferred(tmp_path: Path) -> None:
    """A clouds.yaml entry with username/password selects the password method."""
    env = write_clouds(tmp_path, {"username": "bob", "password": SK, "user_domain_name": "dom"})
    doc = base()
    doc["auth"] = {"cloud": "otc"}
    auth = load(tmp_path, doc, env).credentials
    assert (auth.method, auth.username, auth.domain, auth.password) == ("password", "bob", "dom", Secret(SK))


# --------------------------------------------------------------------------- error lines


def test_unknown_key_names_its_path(tmp_path: Path) -> None:
    """A misspelt key deep in the file is reported with its exact path."""
    doc = base()
    doc["projects"].append({"name": "b", "region": "eu-de", "project_id": PROJECT_ID})
    doc["projects"][1]["instances"] = ["a", "b", "c", {"nmae": "d"}]
    assert error(tmp_path, doc) == (
        "config.yaml: projects[1].instances[3]: unknown key 'nmae' (did you mean 'name'?)"
    )


def test_unknown_top_level_key(tmp_path: Path) -> None:
    """A misspelt section is not silently ignored."""
    doc = base()
    doc["limts"] = {}
    assert error(tmp_path, doc) == "config.yaml: unknown top-level key 'limts' (did you mean 'limits'?)"


def test_bound_violation_shows_limit_and_value(tmp_path: Path) -> None:
    """Out-of-range numbers say the bound and what was given."""
    doc = base()
    doc["limits"] = {"api_concurrency": 0}
    assert error(tmp_path, doc) == "config.yaml: limits.api_concurrency: must be >= 1 (got 0)"


def test_bad_auth_method_lists_choices(tmp_path: Path) -> None:
    """An unknown auth method lists the valid ones, without echoing the value (it is under auth)."""
    doc = base()
    doc["auth"]["method"] = "foo"
    assert error(tmp_path, doc) == "config.yaml: auth.method: must be one of aksk, password, token"


def test_missing_field_is_named(tmp_path: Path) -> None:
    """A required key that is absent is named with its path."""
    doc = base()
    del doc["projects"][0]["region"]
    assert error(tmp_path, doc) == "config.yaml: projects[0].region: field required"


@pytest.mark.parametrize(
    ("section", "values", "expected"),
    [
        (
            "limits",
            {"requests_per_second": "fast"},
            "limits.requests_per_second: must be a number (got 'fast')",
        ),
        ("limits", {"requests_per_second": 0}, "limits.requests_per_second: must be > 0"),
        ("limits", {"retry_attempts": 2.5}, "limits.retry_attempts: must be an integer (got 2.5)"),
        ("collect", {"enabled": "sometimes"}, "collect.enabled: must be true or false (got 'sometimes')"),
        ("collect", {"days": 2}, "collect.days: must be one of 0, 1, 3, 7"),
        ("collect", {"days": True}, "collect.days: must be an integer (got True)"),
        ("collect", {"poll_interval": -1}, "collect.poll_interval: must be > 0"),
        ("download", {"chunk_size": 1024}, "download.chunk_size: must be >= 65536 (got 1024)"),
        ("download", {"chunk_size": 2**27}, "download.chunk_size: must be <= 67108864"),
        ("download", {"expiry_margin": 86400}, "download.expiry_margin: must be < 86400"),
        ("download", {"stall_timeout": 0}, "download.stall_timeout: must be > 0"),
        (
            "download",
            {"allowed_hosts": "obs.eu-de.otc.t-systems.com"},
            "download.allowed_hosts: must be a list",
        ),
        (
            "download",
            {"allowed_hosts": ["https://x.example/"]},
            "download.allowed_hosts[0]: must be a host name",
        ),
        ("download", {"allowed_hosts": []}, "download.allowed_hosts: must not be empty"),
        ("limits", [1, 2], "limits: must be a mapping (got a list)"),
        ("projects", 5, "projects: must be a list (got 5)"),
        ("projects", [], "projects: must list at least one project"),
    ],
)
def test_type_and_bound_errors(tmp_path: Path, section: str, values: object, expected: str) -> None:
    """Wrong types and values name the key and what was expected."""
    doc = base()
    doc[section] = values
    assert error(tmp_path, doc).startswith(f"config.yaml: {expected}")


def test_several_problems_are_counted_on_one_line(tmp_path: Path) -> None:
    """Only the first problem is spelled out, the rest are counted."""
    doc = base()
    doc["limits"] = {"api_concurrency": 0, "download_concurrency": 0, "relink_attempts": 0}
    assert error(tmp_path, doc).endswith("(got 0) (and 2 more problems)")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"name": "../etc"}, "projects[0].name: must be a safe folder name"),
        ({"name": ".."}, "projects[0].name: must be a safe folder name"),
        ({"name": "a/b"}, "projects[0].name: must be a safe folder name"),
        ({"region": "EU DE"}, "projects[0].region: must be a region name"),
        ({"region": "eu-dee"}, "projects[0].region: 'eu-dee' is not an OTC region I know"),
        ({"project_id": "xyz"}, "projects[0].project_id: must be 32 hexadecimal characters (got 'xyz')"),
        ({"project_id": 12345}, "projects[0].project_id: must be a string (got 12345)"),
        ({"project_name": "p"}, "projects[0]: give exactly one of project_id or project_name"),
        ({"project_id": None}, "projects[0]: give exactly one of project_id or project_name"),
        ({"instances": []}, "projects[0].instances: must not be empty"),
        ({"instances": ["a"], "discover": {}}, "projects[0]: give either instances or discover, not both"),
        (
            {"instances": [{"id": INSTANCE_ID, "name": "b"}]},
            "projects[0].instances[0]: give exactly one of 'id' or 'name'",
        ),
        ({"instances": [{}]}, "projects[0].instances[0]: give exactly one of 'id' or 'name'"),
        ({"instances": [{"id": "nope"}]}, "projects[0].instances[0].id: must be an instance id (a UUID)"),
        ({"instances": [17]}, "projects[0].instances[0]: must be an instance id or name"),
        ({"instances": ["a", "b", "a"]}, "projects[0].instances[2]: duplicate of projects[0].instances[0]"),
        ({"endpoints": {"dcs": "http://dcs.example.com"}}, "projects[0].endpoints.dcs: must use https"),
        ({"endpoints": {"dcs": "dcs.example.com"}}, "projects[0].endpoints.dcs: must be an http(s) URL"),
        ({"discover": {"tags": {"env": 1}}}, "projects[0].discover.tags.env: must be a string (got 1)"),
    ],
)
def test_project_errors(tmp_path: Path, change: dict[str, object], expected: str) -> None:
    """Every project rule fails with the project's path."""
    doc = base()
    doc["projects"][0].update(change)
    assert error(tmp_path, doc).startswith(f"config.yaml: {expected}")


def test_duplicate_project_names(tmp_path: Path) -> None:
    """Two projects with one label would share archive folders."""
    doc = base()
    doc["projects"].append(dict(doc["projects"][0]))
    assert (
        error(tmp_path, doc)
        == "config.yaml: projects[1].name: duplicate project name 'prod' (also projects[0])"
    )


def test_archive_root_required_without_emulator(tmp_path: Path) -> None:
    """A real run must say where the archive goes."""
    doc = base()
    del doc["archive"]
    assert error(tmp_path, doc) == "config.yaml: archive.root: field required"


def test_projects_required_without_emulator(tmp_path: Path) -> None:
    """A real run must name at least one project."""
    doc = base()
    del doc["projects"]
    assert error(tmp_path, doc) == "config.yaml: projects: field required"


def test_invalid_yaml_reports_line_not_content(tmp_path: Path) -> None:
    """Broken YAML is one line with its position, without echoing the line (it may hold a secret)."""
    text = f"archive:\n  root: x\nauth: {{method: aksk\n  note: {SK}\n"
    message = error(tmp_path, text)
    assert message.startswith("config.yaml: invalid YAML at line ")
    assert SK not in message


def test_duplicate_yaml_keys_are_rejected(tmp_path: Path) -> None:
    """A key given twice is an error, not a silent overwrite."""
    text = yaml.safe_dump(base()) + "archive:\n  root: other\n"
    assert "duplicate key 'archive'" in error(tmp_path, text)


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    """A missing file is reported in one line naming it."""
    with pytest.raises(ConfigError, match=r"^nope\.yaml: cannot read .*nope\.yaml: No such file"):
        load_config(tmp_path / "nope.yaml", ENV)


@pytest.mark.parametrize(
    ("text", "expected"), [("", "the file is empty"), ("- a\n", "the top level must be")]
)
def test_empty_or_non_mapping_file(tmp_path: Path, text: str, expected: str) -> None:
    """An empty file or a list at the top is explained."""
    assert error(tmp_path, text).startswith(f"config.yaml: {expected}")


@pytest.mark.parametrize(
    ("key", "var"),
    [
        ("password", "OS_PASSWORD"),
        ("secret_key", "OS_SECRET_KEY"),
        ("sk", "OS_SECRET_KEY"),
        ("ak", "OS_ACCESS_KEY"),
        ("access_key", "OS_ACCESS_KEY"),
        ("token", "OS_AUTH_TOKEN"),
        ("auth_token", "OS_AUTH_TOKEN"),
    ],
)
def test_literal_secrets_are_refused(tmp_path: Path, key: str, var: str) -> None:
    """A secret written in the config is refused, pointing at the variable to use instead."""
    doc = base()
    doc["auth"][key] = SK
    message = error(tmp_path, doc)
    assert message.startswith(
        f"config.yaml: auth.{key}: secrets must not be written in the config file; "
        f"put it in the environment variable {var} (or set auth."
    )
    assert message.endswith(") or in clouds.yaml")


def test_literal_password_message_is_exact(tmp_path: Path) -> None:
    """The refusal for auth.password reads exactly as documented."""
    doc = base()
    doc["auth"]["password"] = SK
    assert error(tmp_path, doc) == (
        "config.yaml: auth.password: secrets must not be written in the config file; put it in the "
        "environment variable OS_PASSWORD (or set auth.password_env) or in clouds.yaml"
    )


def test_literal_secret_hint_uses_renamed_variable(tmp_path: Path) -> None:
    """The refusal names the variable the config itself configured."""
    doc = base()
    doc["auth"].update(sk=SK, secret_key_env="PROD_SK")
    assert "environment variable PROD_SK" in error(tmp_path, doc)


def test_missing_environment_variable(tmp_path: Path) -> None:
    """An unset credential variable is named, with the method that needs it."""
    message = error(tmp_path, base(), {"OS_ACCESS_KEY": AK})
    assert message == "config.yaml: auth: environment variable OS_SECRET_KEY is not set (auth.method is aksk)"


def test_empty_environment_variable(tmp_path: Path) -> None:
    """A credential variable set to nothing is called out as empty."""
    message = error(tmp_path, base(), {"OS_ACCESS_KEY": AK, "OS_SECRET_KEY": ""})
    assert message == "config.yaml: auth: environment variable OS_SECRET_KEY is empty (auth.method is aksk)"


def test_env_name_holding_a_value_is_not_echoed(tmp_path: Path) -> None:
    """If a secret is pasted where a variable name belongs, the error does not repeat it."""
    doc = base()
    doc["auth"]["secret_key_env"] = "s3cr3t/+value=="
    message = error(tmp_path, doc)
    assert message.startswith("config.yaml: auth.secret_key_env: must be the NAME of an environment variable")
    assert "s3cr3t" not in message


def test_values_under_auth_are_never_echoed(tmp_path: Path) -> None:
    """A wrong-typed value under auth is described without its content."""
    doc = base()
    doc["auth"]["cloud"] = 987654321
    assert error(tmp_path, doc) == "config.yaml: auth.cloud: must be a string"


def test_env_key_unused_by_method_is_an_error(tmp_path: Path) -> None:
    """A *_env key the chosen method never reads is flagged."""
    doc = base()
    doc["auth"]["token_env"] = "X"
    assert error(tmp_path, doc) == "config.yaml: auth.token_env: is not used with auth.method aksk"


def test_clouds_yaml_unknown_cloud_lists_known(tmp_path: Path) -> None:
    """Naming a cloud clouds.yaml does not have lists the ones it has."""
    env = write_clouds(tmp_path, {"ak": "a", "sk": SK})
    doc = base()
    doc["auth"] = {"cloud": "prod"}
    assert "cloud 'prod' not found in" in error(tmp_path, doc, env)
    assert "(clouds there: otc, other)" in error(tmp_path, doc, env)


def test_clouds_yaml_missing_key(tmp_path: Path) -> None:
    """A clouds.yaml entry lacking a credential names the missing key."""
    env = write_clouds(tmp_path, {"ak": "a"})
    doc = base()
    doc["auth"] = {"cloud": "otc", "method": "aksk"}
    assert "has no auth.sk (auth.method is aksk)" in error(tmp_path, doc, env)


def test_clouds_yaml_file_missing(tmp_path: Path) -> None:
    """OS_CLIENT_CONFIG_FILE pointing nowhere is reported."""
    doc = base()
    doc["auth"] = {"cloud": "otc"}
    env = {"OS_CLIENT_CONFIG_FILE": str(tmp_path / "none.yaml")}
    assert "OS_CLIENT_CONFIG_FILE names" in error(tmp_path, doc, env)


def test_clouds_yaml_with_env_names_is_an_error(tmp_path: Path) -> None:
    """auth.cloud and *_env keys are two sources; mixing them is refused."""
    doc = base()
    doc["auth"] = {"cloud": "otc", "secret_key_env": "X"}
    assert "auth.secret_key_env: is not used with auth.cloud" in error(tmp_path, doc)


# --------------------------------------------------------------------------- emulator


def test_emulator_section_relaxes_archive_projects_and_auth(tmp_path: Path) -> None:
    """With ``emulator:`` alone, the demo archive, projects and credentials are filled in later."""
    s = load(tmp_path, "emulator:\n", {})
    assert s.emulator == {}  # its defaults are the emulator's (tests/unit/test_emulator_embedded.py)
    assert s.archive.root == tmp_path / "demo-archive"
    assert s.credentials == Credentials(method="aksk", source="emulator")


def test_emulator_bounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Emulator knobs are validated like the rest: validate refuses a bad one in one line, exit 2.

    The client keeps the block opaque (issue 9); the emulator's own rules check it, and the
    line still names the file and the key path.
    """
    path = write(tmp_path, {"emulator": {"fault_rate": 1.5}})
    assert load_config(path, {}).emulator == {"fault_rate": 1.5}
    assert main(["validate", "--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        "harvester: error: config.yaml: emulator.fault_rate: must be <= 1 (got 1.5)\n"
    )


def test_config_must_keep_the_emulator_block_a_mapping(tmp_path: Path) -> None:
    """``emulator:`` is checked only as a mapping here; what its keys mean is the emulator's."""
    assert error(tmp_path, {"emulator": [1]}) == "config.yaml: emulator: must be a mapping (got a list)"


INFO = {
    "dcs_endpoint": "http://127.0.0.1:8555",
    "iam_endpoint": "http://127.0.0.1:8555/v3",
    "project_id": "a" * 32,
    "project_ids": ["a" * 32, "b" * 32],
    "access_key": "EMUAK",
    "secret_key": "EMUSK",
    "username": "demo",
    "password": "demo-pass",
    "domain": "demo-domain",
}


def test_apply_emulator_fills_projects_auth_and_hosts(tmp_path: Path) -> None:
    """The emulator's projects, endpoints and keys replace the config's, and its host is allowed."""
    s = apply_emulator(load(tmp_path, {"emulator": {}}, {}), INFO)
    assert [(p.name, p.project_id, p.region) for p in s.projects] == [
        ("emulated", "a" * 32, "eu-de"),
        ("emulated-2", "b" * 32, "eu-de"),
    ]
    assert s.projects[0].dcs_endpoint == "http://127.0.0.1:8555"
    assert s.projects[0].discover == DiscoverSettings()
    assert (s.credentials.method, s.credentials.source) == ("aksk", "emulator")
    assert s.credentials.secret_key == Secret("EMUSK")
    assert host_allowed("127.0.0.1", s.download.allowed_hosts)


def test_apply_emulator_rejects_incomplete_info(tmp_path: Path) -> None:
    """Ready info without an endpoint is a ConfigError, not a KeyError."""
    s = load(tmp_path, {"emulator": {}}, {})
    with pytest.raises(ConfigError, match="lacks 'dcs_endpoint'"):
        apply_emulator(s, {k: v for k, v in INFO.items() if k != "dcs_endpoint"})


# --------------------------------------------------------------------------- describe / hosts


def test_describe_names_sources_but_never_secrets(tmp_path: Path) -> None:
    """`validate` output says where credentials come from and never shows them."""
    text = describe(load(tmp_path, base()))
    assert "access key: from $OS_ACCESS_KEY (set)" in text
    assert "secret key: from $OS_SECRET_KEY (set)" in text
    assert SK not in text
    assert AK not in text
    assert "prod: region eu-de" in text


def test_describe_shows_username_but_not_password(tmp_path: Path) -> None:
    """A user name is not a secret and helps; the password stays hidden."""
    doc = base()
    doc["auth"] = {"method": "password"}
    env = {"OS_USERNAME": "alice", "OS_PASSWORD": SK, "OS_USER_DOMAIN_NAME": "dom"}
    text = describe(load(tmp_path, doc, env))
    assert "username: alice (from $OS_USERNAME)" in text
    assert "password: from $OS_PASSWORD (set)" in text
    assert SK not in text


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("obs.eu-de.otc.t-systems.com", True),
        ("bucket.obs.eu-de.otc.t-systems.com", True),
        ("BUCKET.OBS.EU-DE.OTC.T-SYSTEMS.COM", True),
        ("bucket.obs.eu-de.otc.t-systems.com.", True),
        ("evilobs.eu-de.otc.t-systems.com", False),
        ("obs.eu-de.otc.t-systems.com.evil.com", False),
        ("eu-de.otc.t-systems.com", False),
        ("127.0.0.1", True),
        ("1.127.0.0.1", False),
        ("", False),
    ],
)
def test_host_allowed_matches_whole_labels(host: str, allowed: bool) -> None:
    """Download hosts match an entry exactly or as a subdomain, never as a substring."""
    assert host_allowed(host, ["obs.eu-de.otc.t-systems.com", "127.0.0.1"]) is allowed


def test_allowed_hosts_are_normalised(tmp_path: Path) -> None:
    """Wildcard or upper-case entries are stored in the form host_allowed compares."""
    doc = base()
    doc["download"] = {"allowed_hosts": ["*.OBS.eu-nl.otc.t-systems.com.", ".obs.eu-de.otc.t-systems.com"]}
    assert load(tmp_path, doc).download.allowed_hosts == (
        "obs.eu-nl.otc.t-systems.com",
        "obs.eu-de.otc.t-systems.com",
    )


def test_project_name_needs_password_auth(tmp_path: Path) -> None:
    """Only an IAM password login names a project's id, so AK/SK with project_name is an error."""
    doc = base()
    doc["projects"][0].pop("project_id")
    doc["projects"][0]["project_name"] = "eu-de_x"
    with pytest.raises(ConfigError, match=r"projects\[0\]\.project_name: only auth.method password"):
        load(tmp_path, doc)


# --------------------------------------------------------------------------- the schema, for editors


def test_every_setting_says_what_it_does() -> None:
    """Each key of the file has a description: editors show it on hover, validate next to its value."""
    schema = ConfigFile.model_json_schema()
    objects = {"(top level)": schema, **schema["$defs"]}
    undocumented = [
        f"{where}.{key}"
        for where, obj in objects.items()
        for key, prop in obj.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undocumented == []


def test_validate_shows_every_section_setting_with_its_description(tmp_path: Path) -> None:
    """validate's listing is derived from the schema: each section key, its value, its description."""
    text = describe(load(tmp_path, base()))
    for section in ("archive", "limits", "collect", "download"):
        model = ConfigFile.model_fields[section].annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        assert f"\n{section}:\n" in text
        for name, info in model.model_fields.items():
            line = next(line for line in text.splitlines() if line.startswith(f"  {name}: "))
            assert line.endswith(f"# {info.description}")
    assert "  requests_per_second: 200 " in text
    assert "  allowed_hosts: obs.eu-de.otc.t-systems.com " in text


def test_committed_json_schema_is_current() -> None:
    """config/schema.json is what `harvester config-schema` prints: regenerate it when the schema changes."""
    committed = (REPO / "config" / "schema.json").read_text(encoding="utf-8")
    assert committed == json_schema_text(), "run: harvester config-schema > config/schema.json"


def test_config_schema_command_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """`harvester config-schema` prints a JSON Schema describing the sections of the file."""
    assert main(["config-schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "archive", "auth", "projects", "limits", "collect", "download", "emulator"
    }  # fmt: skip
    assert schema["else"] == {"required": ["archive", "projects"]}  # both optional with `emulator`
    limits = schema["$defs"]["LimitsSettings"]["properties"]
    assert limits["requests_per_second"]["default"] == 200.0
    assert "EACH project" in limits["requests_per_second"]["description"]


@pytest.mark.parametrize("name", ["example.yaml", "demo.yaml"])
def test_shipped_configs_point_editors_at_the_schema(name: str) -> None:
    """The shipped configs name the committed schema, so an editor checks them as they are edited."""
    first = (REPO / "config" / name).read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=schema.json"
