"""`textclf serve` as a subprocess on 127.0.0.1, for the serving tests and the load benchmark."""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import requests

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL_NAME = "reviews"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """`textclf serve` in a subprocess on 127.0.0.1, its log in a file."""

    def __init__(self, output_dir: pathlib.Path, *overrides: str, token: str = "",
                 model_name: str = MODEL_NAME, ca_file: str = ""):
        """`ca_file`: the server speaks HTTPS (its certificate in the overrides), and clients
        trust this CA."""
        self.port = free_port()
        self.url = f"{'https' if ca_file else 'http'}://127.0.0.1:{self.port}"
        self.verify = ca_file or True
        self.log_path = output_dir / f"server-{self.port}.log"
        environment = {**os.environ, "TEXTCLF_SERVING_TOKEN": token}
        command = [sys.executable, "-m", "pipeline.cli", "serve", "--output-dir", str(output_dir),
                   "--set", f"model_name={model_name}", "--port", str(self.port),
                   "--set", "serving.poll_seconds=0.5", *[
                       part for override in overrides for part in ("--set", override)]]
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment,
                                        stdout=self._log, stderr=subprocess.STDOUT)

    def wait_until_live(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n"
                                     f"{self.log()}")
            try:
                if requests.get(self.url + "/", timeout=1, verify=self.verify
                                ).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not live within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flushing, as a crash or an OOM kill."""
        self.process.kill()
        self.process.wait()
        self._log.close()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def predict_text(model_dir, sentences) -> tuple:
    """What the SavedModel itself answers: probabilities and labels."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    outputs = tf.saved_model.load(str(model_dir)).signatures["predict_text"](
        text=tf.constant(sentences))
    return outputs["probabilities"].numpy(), [label.decode() for label in outputs["label"].numpy()]


def assert_served_like_saved_model(output_dir: pathlib.Path, model_name: str, model_dir: str,
                                   sentences: list[str]) -> None:
    """`textclf serve` over a pipeline's store answers `sentences` as the pushed SavedModel
    (V1, probabilities within 1e-5, the same labels)."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    server = ServerProcess(output_dir, model_name=model_name)
    try:
        server.wait_until_live()
        response = requests.post(f"{server.url}/v1/models/{model_name}:predict",
                                 json={"instances": sentences}, timeout=60)
    finally:
        server.stop()
    assert response.status_code == 200, server.log()
    expected_probabilities, expected_labels = predict_text(model_dir, sentences)
    predictions = response.json()["predictions"]
    np.testing.assert_allclose([row["probabilities"] for row in predictions],
                               expected_probabilities, atol=1e-5)
    assert [row["label"] for row in predictions] == expected_labels
