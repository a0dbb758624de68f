"""An input panel's Record tab: the microphone (or a file), the tempo and meter it was played in, a
count-in click the page plays, and snap-to-key. The panel (:mod:`.panels`) reads what it holds.

The count-in is played by the browser (Web Audio, no files, nothing fetched) from the ``js`` hook of
the audio input's ``start_recording`` event: one bar of clicks at the tempo in the tempo box, in the
meter chosen, starting as the recording starts. The hook returns where in the recording the first
downbeat after the clicks falls (seconds, with the output latency the musician hears them late by),
which goes with the take as ``downbeat``: bar 1 of the transcription (see
:func:`musicgen_app.io.audio.count_in_grid`).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

METERS = ("4/4", "3/4", "2/4", "2/2", "6/8", "9/8", "12/8", "5/4")
CLICK_HZ = (4000, 3000)  # downbeat, other beats: above the highest pitch transcribed (C7), so never a note
CLICK_SECONDS = 0.03

# Runs in the page when the recorder has started; its arguments are the tempo box, the meter and the
# count-in box, and it returns the downbeat box's value ("" when no click was played) and a new take
# id for the take box. What it played stays in window.musicgenCountIn (the browser test reads it).
COUNT_IN_JS = """
async (qpm, meter, countIn) => {
  const started = performance.now();  // the recorder started just before this event was sent
  const take = String(Date.now());
  const tempo = parseFloat(qpm);
  if (!countIn || !(tempo >= 30 && tempo <= 300)) return ["", take];
  const [num, den] = String(meter || "4/4").split("/").map(Number);
  const compound = den === 8 && num % 3 === 0 && num > 3;
  const quarter = 60 / tempo;
  const beat = compound ? 1.5 * quarter : (4 / den) * quarter;
  const beats = compound ? num / 3 : num;
  const ctx = window.musicgenClickContext || (window.musicgenClickContext = new AudioContext());
  if (ctx.state !== "running") await ctx.resume();
  const click = (hz) => {
    const n = Math.round(ctx.sampleRate * CLICK_SECONDS), buf = ctx.createBuffer(1, n, ctx.sampleRate);
    const data = buf.getChannelData(0);
    const rate = ctx.sampleRate;
    for (let i = 0; i < n; i++) data[i] = 0.6 * Math.sin(2 * Math.PI * hz * i / rate) * Math.exp(-i / (0.004 * rate));
    return buf;
  };
  const lead = 0.15;  // seconds: room to schedule the first click
  const now = performance.now(), t0 = ctx.currentTime + lead;
  const clicks = [];
  for (let i = 0; i < beats; i++) {
    const src = ctx.createBufferSource();
    src.buffer = click(i === 0 ? CLICK_DOWN_HZ : CLICK_BEAT_HZ);
    src.connect(ctx.destination);
    src.start(t0 + i * beat);
    clicks.push(t0 + i * beat);
  }
  const latency = ctx.outputLatency || ctx.baseLatency || 0;
  const downbeat = (now - started) / 1000 + lead + beats * beat + latency;
  window.musicgenCountIn = {clicks, downbeat, state: ctx.state, context: ctx, tempo, meter: `${num}/${den}`};
  return [downbeat.toFixed(3), take];
}
""".replace("CLICK_SECONDS", str(CLICK_SECONDS)).replace("CLICK_DOWN_HZ", str(CLICK_HZ[0])).replace(
    "CLICK_BEAT_HZ", str(CLICK_HZ[1]))


@dataclass
class RecordTab:
    recording: gr.Audio
    qpm: gr.Textbox
    meter: gr.Dropdown
    count_in: gr.Checkbox
    snap: gr.Checkbox
    downbeat: gr.Textbox  # hidden: seconds into the take at which bar 1 starts ("" : no count-in)
    # hidden: set as a recording starts, emptied when its file is read. A file that arrives while it is
    # empty did not come from a new recording (an upload, or a take trimmed with the waveform's scissors),
    # so the count-in's downbeat does not hold for it: its start is not where the clicks put it.
    take: gr.Textbox

    @property
    def settings(self) -> list:
        """What a take is read with, in :func:`~musicgen_app.actions.inputs.audio_origin`'s order after the file."""
        return [self.qpm, self.snap, self.meter, self.downbeat]


def record_tab(key: str) -> RecordTab:
    """The Record tab's widgets (inside the caller's ``gr.Tab``), the count-in wired to the recorder."""
    recording = gr.Audio(sources=["microphone", "upload"], type="filepath", show_label=False,
                         elem_id=f"{key}-audio-in")
    with gr.Row(elem_classes="compact-row"):
        # a text box, as in the forms: a number box cannot stay empty
        qpm = gr.Textbox("", label="Tempo of the recording (empty: estimated)", placeholder="estimated",
                         max_lines=1, min_width=120, elem_id=f"{key}-audio-qpm")
        meter = gr.Dropdown(list(METERS), value="4/4", label="Meter", min_width=80, elem_id=f"{key}-audio-meter")
    with gr.Row(elem_classes="compact-row"):
        count_in = gr.Checkbox(True, label="Count-in", min_width=100, elem_id=f"{key}-audio-count-in",
                               info="one bar of clicks at the tempo before you come in (needs the tempo)")
        snap = gr.Checkbox(False, label="Snap to key", min_width=100, elem_id=f"{key}-audio-snap",
                           info="notes outside the key's scale move to the nearest scale tone")
    downbeat = gr.Textbox("", visible=False, elem_id=f"{key}-audio-downbeat")
    take = gr.Textbox("", visible=False, elem_id=f"{key}-audio-take")
    recording.start_recording(None, [qpm, meter, count_in], [downbeat, take], js=COUNT_IN_JS, queue=False,
                              api_visibility="private")
    return RecordTab(recording, qpm, meter, count_in, snap, downbeat, take)
