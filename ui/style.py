"""One fixed, colour-blind-safe colour per memory component (Okabe-Ito), used by every chart."""

COMPONENT_COLOURS = {
    "weights": "#0072B2",  # blue
    "encoder": "#D55E00",  # vermillion
    "kv_cache": "#E69F00",  # orange
    "activation": "#009E73",  # bluish green
    "logits": "#CC79A7",  # reddish purple
    "overhead": "#56B4E9",  # sky blue
    "engine_reserve": "#999999",  # grey
}
# Hatching as a second cue, so no reading depends on colour alone.
COMPONENT_PATTERNS = {"weights": "", "encoder": "|", "kv_cache": "/", "activation": "x", "logits": ".", "overhead": "-",
                      "engine_reserve": "+"}
SERIES = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
# One colour per layer kind, for the layer-stack strip.
KIND_COLOURS = {"full": "#0072B2", "sliding": "#56B4E9", "chunked": "#009E73", "mla": "#CC79A7",
                "cross": "#F0E442", "state": "#E69F00", "none": "#BBBBBB"}

# Every chart's legend sits below the plot and its title may wrap onto a second line, so a 390 px phone
# screen shows the data uncovered and the title whole (tests/test_e2e.py checks both).
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.2, x=0, xanchor="left")
# the title in the top-left corner of the chart's own box, so nothing above can cover it
TITLE = dict(font=dict(size=16), x=0.01, xanchor="left", xref="container", y=1, yanchor="top", yref="container",
             pad=dict(t=10))


def tidy(fig, title: str, subtitle: str = ""):
    """Apply the shared layout: a short title (a subtitle on its own line), the legend below the plot."""
    text = title + (f"<br><sup>{subtitle}</sup>" if subtitle else "")
    fig.update_layout(title=TITLE | dict(text=text), legend=LEGEND_BELOW,
                      margin=dict(l=10, r=10, t=80 if subtitle else 50))
    return fig

