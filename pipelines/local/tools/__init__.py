"""The commands around a run, apart from running it: `make serve` and `make invoke` (serving.py), `make jupyter`
and `make terminal` (environment.py), `make model` (pretrained.py). They read the store and the runs; the
engine and the job handlers never import them."""
