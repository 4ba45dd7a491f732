"""The streaming demo of the README on a real recording: a spoken digit's MFCC frames, one step each over
/v1/sessions as the audio arrives, with an answer after every frame."""

from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_helpers import LiveServer

from lstmkit.data.audio import FrontEnd, read_wav
from lstmkit.errors import DataError
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


def test_a_model_trained_with_cmn_refuses_sessions_and_answers_whole_recordings(speech_cmn_run):
    """Per-recording CMN needs the whole recording: /v1/sessions says so (409), and the client cannot build
    such a stream either; /v1/predict takes the normalised frames of a whole file and answers as predict does."""
    model = load_trained(speech_cmn_run / "model")
    front = FrontEnd.from_meta(model.meta["audio_front_end"])
    reason = ('its audio front end normalises each recording by its whole-utterance statistics (cmn = "mean"), '
              'which a stream does not know until it ends; train with [data] cmn = "none" to stream')
    with pytest.raises(DataError, match=r"audio front end: cannot stream: its audio front end normalises"):
        front.online()
    frames = front.file_features(FSDD / "8_nicolas_2.wav")  # (T, 13)
    with LiveServer(create_app(load_backend(speech_cmn_run / "model"))) as live, \
            httpx.Client(base_url=live.url) as client:
        assert client.get("/healthz").json()["streaming"] is False
        refused = client.post("/v1/sessions")
        assert refused.status_code == 409
        assert refused.json()["error"].startswith(f"sessions are not supported for this model: {reason}")
        answer = client.post("/v1/predict", json={"inputs": [frames.tolist()]})
        assert answer.status_code == 200, answer.text
    whole = model.predict_proba(frames[None])[0]
    np.testing.assert_allclose([answer.json()["predictions"][0]["probabilities"][str(d)] for d in range(10)], whole,
                               atol=1e-5)
