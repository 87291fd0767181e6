"""Which automation the demo runs for the workbook rows, and with which parameters (pure)."""

from __future__ import annotations

from test_generator_leno import SLICE, leno_candidate

from rote.demo.run import demo_plan, demo_requests
from rote.demo.students import expected_submission, students_from_log
from rote.generator import exprs, generate


def test_a_whole_record_automation_gets_row_and_flags() -> None:
    a = generate(leno_candidate(SLICE))
    plan = demo_plan(a)
    # the decision box and "add another response" (skipped after a batch's last record) are yes/no inputs
    flags = {"do_clickcheckbox_decisionbox", "do_clicklink_add_another_response"}
    assert plan is not None and plan.row_params == {"row"} and plan.flags == flags
    students = students_from_log()
    reqs = demo_requests(plan, students)
    assert len(reqs) == 50 and len({r.run_id for r in reqs}) == 50
    assert reqs[0].params == {"row": "2", **dict.fromkeys(flags, "true")}


def test_fragments_and_unknown_inputs_are_not_run() -> None:
    a = generate(leno_candidate(SLICE))
    no_submit = [st for st in a.plan if st["label"] != "clickButton_Submit"]
    assert demo_plan(a.model_copy(update={"plan": no_submit})) is None  # never submits: not a record
    extra = a.model_copy(update={"parameters": [*a.parameters, "who_knows"]})
    assert demo_plan(extra) is None


def test_value_parameters_are_read_off_the_row() -> None:
    a = generate(leno_candidate(SLICE))
    plan = [dict(st) for st in a.plan]
    for st in plan:  # as with pseudonymised phone numbers: the value could not be learnt
        if st["op"] == "fill_field" and st["target"].get("field") == exprs.const("countrycode"):
            st["value"] = exprs.param("phone_value")
    a2 = a.model_copy(update={"plan": plan, "parameters": [*a.parameters, "phone_value"]})
    p = demo_plan(a2)
    assert p is not None and p.inputs == {"phone_value": ("field", "countrycode")}
    s = students_from_log()[3]
    assert p.params(s)["phone_value"] == expected_submission(s)["countrycode"]
