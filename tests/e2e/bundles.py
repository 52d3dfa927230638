"""Policy files the bundle and hot-reload tests swap in: one allows all, one denies all,
one does not load."""

ALLOW_ALL = """\
name: everything
rules:
  - name: allow-all
    when: "true"
    decision: allow
    reason: all good
"""
DENY_ALL = ALLOW_ALL.replace("allow-all", "deny-all").replace("decision: allow", "decision: deny")
BROKEN = """\
name: broken
rules:
  - name: bad-rule
    when: action.params.amount > > 3
    decision: allow
    reason: never loads
"""
