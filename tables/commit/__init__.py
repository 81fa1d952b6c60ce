"""THE commit path: the change types, group commit, server-side rebase, and the committer."""
