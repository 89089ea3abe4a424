"""Config mistakes never echo a secret; hostile files stay bounded; typos get a suggestion."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from harvester.config.describe import describe
from harvester.config.load import load_config
from harvester.config.safetext import looks_like_secret, plausible_cloud_name, plausible_env_name
from harvester.config.yamlfile import MAX_CONFIG_BYTES, MAX_DEPTH
from harvester.errors import ConfigError

PROJECT_ID = "0524e839a54847039e9b2b46e8aa788a"
ENV = {"OS_ACCESS_KEY": "AKVISIBLE", "OS_SECRET_KEY": "not-printed-secret"}
MINIMAL: dict[str, Any] = {
    "archive": {"root": "archive"},
    "auth": {"method": "aksk"},
    "projects": [{"name": "prod", "region": "eu-de", "project_id": PROJECT_ID}],
}
# What people paste by mistake: an OTC-style AK and SK, a password, an IAM token, a URL with one.
PASTED: dict[str, str | int] = {
    "access key": "QTWAOYTTINDUT2QVKYUC",
    "secret key": "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY42",
    "password": "Summer2024",
    "password with symbols": "hunter2!pass",
    "token": "MIIEhAYJKoZIhvcNAQcCoIIEdTCCBHECAQExDTALBglghkgBZQMEAgEwggLRBgkqhkiG9w0BBwGgggLCBIICvnsidG9r",
    "long word": "X" * 65,
    "numeric": 123456789012345678,
}


def base() -> dict[str, Any]:
    return copy.deepcopy(MINIMAL)


def write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "config.yaml"
    if isinstance(doc, bytes):
        path.write_bytes(doc)
    else:
        path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    return path


def error(tmp_path: Path, doc: object, **kw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, doc), ENV, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- names vs secrets


@pytest.mark.parametrize(
    "name", ["OS_SECRET_KEY", "PROD_SK", "HARVESTER_PROD_EU_DE_SECRET_KEY", "my_ak", "X"]
)
def test_ordinary_variable_names_are_plausible(name: str) -> None:
    """Names people give environment variables pass the check."""
    assert plausible_env_name(name)


@pytest.mark.parametrize("name", ["otc-prod", "eu-de.prod_2", "openstack"])
def test_ordinary_cloud_names_are_plausible(name: str) -> None:
    """Names people give clouds.yaml entries pass the check."""
    assert plausible_cloud_name(name)


@pytest.mark.parametrize("what", sorted(PASTED))
def test_pasted_credentials_are_not_plausible_names(what: str) -> None:
    """Keys, passwords and tokens are recognised as not being a variable or cloud name."""
    value = str(PASTED[what])
    assert not plausible_env_name(value)
    assert not plausible_cloud_name(value)


def test_secret_shapes() -> None:
    """The shape rules: long separator-free runs with digits, mixed-case words with digits."""
    assert looks_like_secret("ABCDEFGHIJKLMNO1")  # 16 with a digit
    assert not looks_like_secret("ABCDEFGHIJKLMNOP")  # 16 letters: a word-ish name
    assert looks_like_secret("Passw0rd")
    assert not looks_like_secret("PASSWORD_2")


@pytest.mark.parametrize("key", ["access_key_env", "secret_key_env", "cloud"])
@pytest.mark.parametrize("what", sorted(PASTED))
def test_a_secret_pasted_under_auth_is_rejected_without_echo(tmp_path: Path, key: str, what: str) -> None:
    """A credential in a name field: exit-2 error naming the key path, never the value."""
    doc = base()
    doc["auth"] = {key: PASTED[what]}
    for command_kw in ({}, {"require_credentials": False}):  # run and validate
        message = error(tmp_path, doc, **command_kw)
        expected = "must be a string" if isinstance(PASTED[what], int) else "must be the NAME of"
        assert message.startswith(f"config.yaml: auth.{key}: {expected}"), message
        assert str(PASTED[what]) not in message
        assert str(PASTED[what])[:8] not in message


@pytest.mark.parametrize("what", sorted(PASTED))
def test_values_under_auth_never_appear_in_any_error(tmp_path: Path, what: str) -> None:
    """Wrong types, unknown methods and unknown keys under auth: no error repeats what was written."""
    value = PASTED[what]
    cases: list[dict[str, Any]] = [
        {"method": value},
        {"method": [value]},
        {"secret_key_env": {"nested": value}},
        {"secret_kee_env": value},
        {str(value): "x"},
    ]
    for auth in cases:
        doc = base()
        doc["auth"] = auth
        message = error(tmp_path, doc)
        assert message.startswith("config.yaml: auth")
        assert str(value) not in message, message


def test_auth_that_is_a_bare_secret_is_not_echoed(tmp_path: Path) -> None:
    """``auth: <the secret>`` (a scalar instead of a mapping) says what is wrong, not what was written."""
    doc = base()
    doc["auth"] = PASTED["secret key"]
    message = error(tmp_path, doc)
    assert message == "config.yaml: auth: must be a mapping"


def test_validate_describe_never_shows_a_pasted_value(tmp_path: Path) -> None:
    """Plain validate (no credentials required) refuses the same value before describing anything."""
    doc = base()
    doc["auth"]["secret_key_env"] = PASTED["access key"]
    message = error(tmp_path, doc, require_credentials=False)
    assert str(PASTED["access key"]) not in message
    doc["auth"]["secret_key_env"] = "PROD_SK"
    text = describe(load_config(write(tmp_path, doc), {}, require_credentials=False))
    assert "secret key: from $PROD_SK (not set)" in text


def test_clouds_yaml_auth_url_is_not_echoed(tmp_path: Path) -> None:
    """A bad auth_url in clouds.yaml is described, not quoted (it may carry user:password@)."""
    clouds = tmp_path / "clouds.yaml"
    bad = "ftp://user:Summer2024@iam.example.com/v3"
    clouds.write_text(yaml.safe_dump({"clouds": {"otc": {"auth": {"auth_url": bad, "ak": "a", "sk": "b"}}}}))
    doc = base()
    doc["auth"] = {"cloud": "otc"}
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, doc), {"OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert "auth_url must be an https URL" in str(info.value)
    assert "Summer2024" not in str(info.value)


# --------------------------------------------------------------------------- did you mean


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"limits": {"api_concurency": 2}},
            "limits: unknown key 'api_concurency' (did you mean 'api_concurrency'?)",
        ),
        (
            {"auth": {"secret_key_evn": "X"}},
            "auth: unknown key 'secret_key_evn' (did you mean 'secret_key_env'?)",
        ),
        ({"archve": {"root": "x"}}, "unknown top-level key 'archve' (did you mean 'archive'?)"),
        (
            {"collect": {"zzz": 1}},
            "collect: unknown key 'zzz' (expected one of: days, enabled, poll_interval",
        ),
    ],
)
def test_unknown_keys_suggest_the_allowed_key(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    """A misspelt key names its path and the closest allowed key at that level."""
    doc = base()
    doc.update(change)
    if "archve" in change:
        del doc["archive"]
    assert error(tmp_path, doc).startswith(f"config.yaml: {expected}")


def test_unknown_key_in_a_list_item_suggests_from_the_item_schema(tmp_path: Path) -> None:
    """Inside projects[i].endpoints the suggestion comes from that level's keys."""
    doc = base()
    doc["projects"][0]["endpoints"] = {"dsc": "https://dcs.example.com"}
    assert (
        error(tmp_path, doc) == "config.yaml: projects[0].endpoints: unknown key 'dsc' (did you mean 'dcs'?)"
    )


# --------------------------------------------------------------------------- hostile files


def test_deeply_nested_yaml_is_one_config_error(tmp_path: Path) -> None:
    """Ten thousand nested lists: one ConfigError line, not a RecursionError."""
    message = error(tmp_path, "archive: " + "[" * 10_000 + "]" * 10_000 + "\n")
    assert message.startswith(f"config.yaml: nested more than {MAX_DEPTH} levels deep")


def test_deeply_nested_block_mappings_are_one_config_error(tmp_path: Path) -> None:
    """Indentation-nested mappings hit the same bound."""
    text = "".join(f"{' ' * i}k{i}:\n" for i in range(200)) + " " * 200 + "v: 1\n"
    assert "nested more than" in error(tmp_path, text)


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    """Aliases that expand to billions of values are refused while parsing."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    text = "\n".join(lines) + "\nprojects: *a9\n"
    assert "aliases expand to more than" in error(tmp_path, text)


def test_alias_chains_cannot_stack_depth(tmp_path: Path) -> None:
    """Anchors that each nest the previous one deeper are bounded by the same depth limit."""
    nest = 40
    lines = [f"a0: &a0 {'[' * nest}1{']' * nest}"]
    lines += [f"a{i}: &a{i} {'[' * nest}*a{i - 1}{']' * nest}" for i in range(1, 4)]
    assert "aliases nest values more than" in error(tmp_path, "\n".join(lines) + "\n")


def test_self_referencing_anchor_is_refused(tmp_path: Path) -> None:
    """``&a [*a]`` would be an infinite structure: refused."""
    assert "refers to itself" in error(tmp_path, "archive: &a [*a]\n")


def test_modest_aliases_still_work(tmp_path: Path) -> None:
    """Ordinary anchor reuse (one discover filter shared by two projects) is fine."""
    text = f"""
archive: {{root: archive}}
auth: {{method: aksk}}
projects:
  - {{name: prod, region: eu-de, project_id: {PROJECT_ID}, discover: &tags {{tags: {{team: sre}}}}}}
  - {{name: second, region: eu-de, project_id: {PROJECT_ID}, discover: *tags}}
"""
    settings = load_config(write(tmp_path, text), ENV)
    assert [p.discover.tags_query if p.discover else "" for p in settings.projects] == ["team=sre"] * 2


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    """A config over 10 MiB is refused by size; its content is never parsed."""
    path = tmp_path / "config.yaml"
    with open(path, "wb") as fh:
        fh.write(b"[" * 16)  # invalid YAML: a parse would fail differently
        fh.truncate(MAX_CONFIG_BYTES + 1)
    with pytest.raises(ConfigError, match=r"^config\.yaml: the file is larger than 10 MiB"):
        load_config(path, ENV)


def test_ten_thousand_instance_ids_validate(tmp_path: Path) -> None:
    """A project listing 10,000 instance ids validates (linear work, no quadratic duplicate scan)."""
    ids = [str(uuid.UUID(int=i + 1)) for i in range(10_000)]
    doc = base()
    doc["projects"][0]["instances"] = ids
    settings = load_config(write(tmp_path, doc), ENV)
    refs = settings.projects[0].instances
    assert refs is not None
    assert [r.id for r in refs] == ids


def test_duplicate_among_many_ids_names_both_positions(tmp_path: Path) -> None:
    """The linear duplicate check still names the first occurrence."""
    ids = [str(uuid.UUID(int=i + 1)) for i in range(5_000)]
    doc = base()
    doc["projects"][0]["instances"] = [*ids, ids[1234]]
    assert error(tmp_path, doc) == (
        "config.yaml: projects[0].instances[5000]: duplicate of projects[0].instances[1234]"
    )


@pytest.mark.parametrize(
    "text",
    [
        "auth: {secret_key_env: *Summer2024}\n",  # a password starting with '*' reads as an alias
        "auth: {secret_key_env: !Passw0rd-x}\n",  # ... and one starting with '!' as a tag
        'auth: {secret_key_env: "Summer\\q2024"}\n',
    ],
)
def test_yaml_errors_do_not_quote_what_they_choked_on(tmp_path: Path, text: str) -> None:
    """PyYAML's own messages quote the offending text; ours keep the position and hide the text."""
    message = error(tmp_path, text)
    assert message.startswith("config.yaml: invalid YAML at line 1")
    assert "Summer" not in message
    assert "Passw0rd" not in message


def test_yaml_error_keeps_short_tokens(tmp_path: Path) -> None:
    """Single characters and token names stay: they are what the user needs to see."""
    assert "found character '\\t'" in error(tmp_path, "a:\tb\n")
    assert "'<stream end>'" in error(tmp_path, "a: [b\n")


def test_duplicate_secret_like_key_is_not_shown(tmp_path: Path) -> None:
    """A key given twice is named only when it looks like a name."""
    message = error(tmp_path, "auth:\n  Summer2024x: 1\n  Summer2024x: 2\n")
    assert message == "config.yaml: invalid YAML at line 3, column 3: duplicate key (not shown)"
