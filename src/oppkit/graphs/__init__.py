"""Relationship graphs (networkx model, pyvis view); see :mod:`.relationships`.

Example::

    rel = kit.relationship_graph(account="acme-robotics.example")
    rel.save("acme.html")                 # one offline HTML file
"""

from .relationships import RelationshipGraph, engagement, relationship_graph

__all__ = ["RelationshipGraph", "engagement", "relationship_graph"]
