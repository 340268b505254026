"""seal-agent: SEAL / V* guided visual search as a LangGraph state machine and an agent tool.

Importing the package is cheap: nothing heavy (torch, transformers, weights) is loaded
until a model is built.
"""

__version__ = "0.1.0"
