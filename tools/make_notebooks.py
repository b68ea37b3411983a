"""Write notebooks/*.ipynb from the cell sources below (outputs stay empty in git).

Run: python tools/make_notebooks.py
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

QUICKSTART = [
    new_markdown_cell(
        "# oppkit quickstart\n\n"
        "Agents sync mailboxes, calendars and Salesforce into one shared database; "
        "`oppkit.connect()` opens it and every accessor returns a pandas DataFrame.\n\n"
        "`oppkit demo` fills a database with a synthetic organisation (Northwind Analytics) "
        "and starts JupyterLab with `OPPKIT_DATABASE_URL` pointing at it."
    ),
    new_code_cell(
        "import oppkit\n\n"
        "kit = oppkit.connect()  # OPPKIT_DATABASE_URL, oppkit.toml, or the default SQLite file\n"
        "kit"
    ),
    new_markdown_cell(
        "## Opportunities\n\nStage, deal size, days to close and open alerts, one row per deal. "
        "Private deals show only to their owner and members (`oppkit.connect(user=EMAIL)`)."
    ),
    new_code_cell(
        "opps = kit.opportunities()\n"
        'opps[["name", "account", "owner", "stage", "amount", "close_date", "days_to_close", "open_alerts"]]'
    ),
    new_markdown_cell(
        "## The pipeline\n\nOpen stages in funnel order, with count, amount and weighted amount."
    ),
    new_code_cell("pipeline = kit.pipeline()\npipeline"),
    new_markdown_cell(
        "## A deal's timeline\n\nEvery touch point, newest first: emails, meetings, calls and tasks "
        "from mail exports, calendars and Salesforce. Times are UTC."
    ),
    new_code_cell(
        'biggest = opps[opps["stage_status"] == "open"].sort_values("amount", ascending=False).iloc[0]\n'
        "timeline = kit.timeline(opportunity=int(biggest.id))\n"
        'print(biggest["name"])\n'
        'timeline[["occurred_at", "kind", "direction", "sender", "subject", "snippet"]].head(15)'
    ),
    new_markdown_cell(
        "## Alerts and tasks found in communication\n\nRequests made of us, commitments we made "
        "(with their due dates), risks, and customer questions we left unanswered, each with "
        "the rule that found it and the message it came from."
    ),
    new_code_cell(
        'alerts = kit.alerts(status="open")\n'
        'alerts[["kind", "rule", "text", "due_at", "opportunity"]].head(10)'
    ),
    new_markdown_cell(
        "## Who should be on the deal?\n\nExternal people on the deal's threads who are not "
        "members yet, most engaged first."
    ),
    new_code_cell("kit.suggested_people(int(biggest.id)).head()"),
    new_markdown_cell(
        "## People and accounts\n\nOne person per email address; accounts from Salesforce and from email domains."
    ),
    new_code_cell(
        'kit.people(opportunity=int(biggest.id))[["email", "name", "title", "account", "role"]]'
    ),
    new_code_cell('kit.accounts()[["name", "domain", "owner", "people"]]'),
    new_markdown_cell(
        "## Follow a frame\n\nFrames remember where they came from: the `.oppkit` accessor "
        "goes from a selection of deals to their timeline or people."
    ),
    new_code_cell(
        'large = opps[opps["amount"] > 100_000]\n'
        'emails = large.oppkit.timeline(kind="email")\n'
        'emails.groupby("opportunity").size().sort_values(ascending=False).rename("emails")'
    ),
    new_markdown_cell(
        "## Who do we talk to most?\n\nInbound vs outbound emails per account over the last 90 days."
    ),
    new_code_cell(
        "import pandas as pd\n\n"
        'recent = kit.timeline(kind="email", since=pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=90))\n'
        'recent.pivot_table(index="account", columns="direction", values="id", aggfunc="count", fill_value=0)'
    ),
    new_markdown_cell(
        "A quick check that the demo data arrived as expected (the tests run this notebook)."
    ),
    new_code_cell(
        "assert len(opps) > 0 and len(timeline) > 0\n"
        'assert str(timeline["occurred_at"].dt.tz) == "UTC"\n'
        'assert list(pipeline["order"]) == sorted(pipeline["order"])\n'
        'assert kit.people()["email"].is_unique\n'
        "assert len(emails) > 0\n"
        'assert len(alerts) > 0 and alerts["rule"].notna().all()\n'
        'print("ok")'
    ),
]


def write(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, NOTEBOOKS / name)


if __name__ == "__main__":
    write("01_quickstart.ipynb", QUICKSTART)
