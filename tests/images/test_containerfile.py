"""The Containerfile as text: layer order, the CA secret, labels (no container tool needed)."""

from __future__ import annotations

from legion.images.containerfile import ContainerfileSpec, render


def instructions(text: str) -> list[str]:
    return [line.split()[0] for line in text.splitlines() if line and line[0].isupper()]


def test_the_model_is_the_last_layer_and_only_labels_follow() -> None:
    text = render(ContainerfileSpec("localhost/legion-base:x", {"legion.model.name": "census"}))
    order = instructions(text)
    assert order[0] == "FROM"
    assert order[-2:] == ["COPY", "LABEL"]
    assert "COPY model/ /model/" in text
    last_copy = max(i for i, line in enumerate(text.splitlines()) if line.startswith("COPY"))
    assert text.splitlines()[last_copy] == "COPY model/ /model/"
    assert order.count("LABEL") == 1  # one step, not one per label


def test_pip_gets_the_ca_bundle_as_a_secret_only() -> None:
    with_ca = render(ContainerfileSpec("base"))
    pip_lines = [line for line in with_ca.splitlines() if "pip install" in line]
    assert len(pip_lines) == 2
    assert all("--mount=type=secret,id=pipca,target=/run/secrets/pipca" in line for line in pip_lines)
    assert all("PIP_CERT=/run/secrets/pipca" in line and "PIP_NO_CACHE_DIR=1" in line for line in pip_lines)
    without = render(ContainerfileSpec("base", ca_secret=False))
    assert "secret" not in without and "PIP_CERT" not in without


def test_runs_as_a_non_root_user_stops_on_sigterm_and_serves_on_5000() -> None:
    text = render(ContainerfileSpec("base"))
    assert "USER 10001:10001" in text
    assert "STOPSIGNAL SIGTERM" in text
    assert "EXPOSE 5000" in text
    assert (
        'ENTRYPOINT ["/opt/legion/venv/bin/legion", "serve", "/model", "--host", "0.0.0.0", "--port", "5000"]' in text
    )


def test_label_values_are_quoted_so_they_cannot_add_instructions() -> None:
    text = render(ContainerfileSpec("base", {"legion.git.commit": 'a"b\\c\nRUN rm -rf /'}))
    assert text.splitlines()[-1] == 'LABEL "legion.git.commit"="a\\"b\\\\c RUN rm -rf /"'
