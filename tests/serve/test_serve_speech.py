"""The streaming demo of the README on a real recording: a spoken digit's MFCC frames, one step each over
/v1/sessions as the audio arrives, with an answer after every frame."""

from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_helpers import LiveServer

from lstmkit.data.audio import FrontEnd, read_wav
from lstmkit.serve import create_app, load_backend
from lstmkit.tasks import load_trained

FSDD = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "fsdd" / "recordings"  # as the speech_run fixture
pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_recording_streams_frame_by_frame_to_the_whole_file_answer(speech_run):
    """The README's streaming demo: 40 ms audio chunks in, each new frame posted as one step, an answer after
    every frame; the last one is predict's answer on the whole file."""
    model = load_trained(speech_run / "model")
    recording = FSDD / "8_nicolas_2.wav"
    samples, rate = read_wav(recording)
    stream = FrontEnd(rate).online()
    answers = []
    with LiveServer(create_app(load_backend(speech_run / "model"))) as live, httpx.Client(base_url=live.url) as client:
        session = client.post("/v1/sessions").json()["id"]
        for start in range(0, samples.size, 320):
            for frame in stream.accept(samples[start:start + 320]):
                response = client.post(f"/v1/sessions/{session}/step", json={"inputs": [frame.tolist()]})
                assert response.status_code == 200, response.text
                answers.append(response.json()["outputs"][0])
        assert stream.finish().shape[0] == 0
    whole = model.predict_proba(FrontEnd(rate).file_features(recording)[None])[0]
    assert len(answers) == FrontEnd(rate).file_features(recording).shape[0]
    np.testing.assert_allclose([answers[-1]["probabilities"][str(d)] for d in range(10)], whole, atol=1e-5)
