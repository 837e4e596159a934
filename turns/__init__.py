"""One chat turn: commit the question, run the graph, stream typed events, save the answer."""
