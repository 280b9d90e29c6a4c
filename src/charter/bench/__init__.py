"""Speed benchmarks (`charter bench ...`), always against baselines measured in the same process
and run, and `docs/results.md` rendered from their JSON.

One module per benchmark: `generate` (charter's generate stage against raw transformers
`model.generate` in fp32 and bf16 and a naive one-prompt loop), `sl` (the SL-CAI stage), `mc`
(`charter evaluate mc`) and `label` (the label stage's scoring), each on the default engine
against the same work on transformers fp32; `collective` (the collective analysis at scale next
to red-dwarf). `baseline` holds what they share (the torch fp32 twin of a spec, the warm-up,
the prompts), `machine` where and when a run happened (platform, cores, date, git commit, peak
memory), and `report` renders `docs/results.md` from `docs/bench/*.json`
(`python -m charter.bench.report`). Nothing heavy is imported here: each benchmark imports torch
and the rest when it runs.
"""
