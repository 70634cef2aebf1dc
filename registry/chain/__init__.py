"""The Ethereum side: the packaged ModelRegistry artifact, the client, the embedded devnet.

Import the submodules directly (``registry.chain.client``); this package stays import-light so
CLI help never pulls in web3.
"""
