"""Oracle nodes: serve predictions of verified models to PredictionFeed contracts.

One idea per module (import them directly; this package imports nothing heavy):

- ``feed``   FeedClient for the PredictionFeed contract, fixed-point scaling (to_fixed/from_fixed)
- ``inputs`` input sources (CSV/JSON file, HTTP JSON endpoint) that turn garbage into a skip reason
- ``model``  ServedModel: a verified onnxruntime session bound to its release
- ``state``  the node's progress on disk, written atomically
- ``server`` the local HTTP face (GET /health, POST /predict)
- ``follow`` ReleaseFollower: which release serves (follow the chain, verify, hot-swap, lineage)
- ``node``   OracleNode: rounds and submissions, health, the loop with back-off, the HTTP server
"""
