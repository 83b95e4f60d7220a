"""Model card generated from the loaded artifact: TRIPOD+AI items and the source attributes that
ONC HTI-1 requires for predictive decision support interventions.

Every sentence about the model comes from the artifact itself (training data, n, events, base
rate, date, demographics, evaluation), so a model retrained on local data is described as that
model; the study's figures come from the bundled evidence file and are labelled as the study's.
Nothing is typed in.

The source attributes are the 31 of 45 CFR 170.315(b)(11)(iv)(B)(1)–(9), adopted by the ONC HTI-1
final rule (89 FR 1192, 9 January 2024). `HTI1_PREDICTIVE_SOURCE_ATTRIBUTES` lists them in the
regulation's order and wording, as restated in the ONC list that OpenEMR seeds
(`dsi_predictive_source_attributes`, 31 entries) and in Aidbox's (b)(11) documentation
(docs.aidbox.app, "Source attributes"): (1) details and output (4), (2) purpose (4), (3) cautioned
out-of-scope use (2), (4) development details and input features (4), (5) fairness process (2),
(6) external validation process (4), (7) quantitative measures of performance (5), (8) ongoing
maintenance (4), (9) update and continued validation or fairness assessment schedule (2). Every
one is filled for the loaded model, from data or with a plain statement of why it cannot be.

The prose is made of ``fhir_mappers.notes.Note``: English as built (the JSON, governance tools),
worded in the reader's language by the renderer's ``say`` (``cards.notes.say``); numbers stay
as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhir_mappers.notes import Note
from hcc_evidence import Evidence, load_evidence
from models.artifacts import DEMOGRAPHIC_COLUMNS, BundleArtifact, TrainingSummary

Say = Callable[[str], str]  # a note in the reader's language (cards.notes.say); English by default

SYNTHETIC_NOTE = Note(
    "model_card.synthetic",
    "The default models are fitted on a synthetic cohort reconstructed from the study's published "
    "aggregates (Table 1 counts, logistic ORs, Kaplan-Meier medians and landmarks, Cox HRs); it is not "
    "patient data. Their performance figures describe that reconstruction, not a real population.",
)

_DEMOGRAPHICS_REF = "paragraph (b)(11)(iv)(A)(5)-(13)"


# (key, title, ((attribute key, the regulation's wording), ...)) for 45 CFR 170.315(b)(11)(iv)(B)(1)-(9).
HTI1_PREDICTIVE_SOURCE_ATTRIBUTES: tuple[tuple[str, Note, tuple[tuple[str, Note], ...]], ...] = (
    (
        "details_and_output",
        Note("hti1.1", "(1) Details and output of the intervention"),
        (
            ("developer", Note("hti1.1.i", "Name and contact information for the intervention developer")),
            (
                "funding_source",
                Note("hti1.1.ii", "Funding source of the technical implementation for the intervention(s) development"),
            ),
            (
                "output_description",
                Note("hti1.1.iii", "Description of value that the intervention produces as an output"),
            ),
            (
                "output_type",
                Note(
                    "hti1.1.iv",
                    "Whether the intervention output is a prediction, classification, recommendation, "
                    "evaluation, analysis, or other type of output",
                ),
            ),
        ),
    ),
    (
        "purpose",
        Note("hti1.2", "(2) Purpose of the intervention"),
        (
            ("intended_use", Note("hti1.2.i", "Intended use of the intervention")),
            ("intended_patients", Note("hti1.2.ii", "Intended patient population(s) for the intervention's use")),
            ("intended_users", Note("hti1.2.iii", "Intended user(s)")),
            (
                "decision_making_role",
                Note(
                    "hti1.2.iv",
                    "Intended decision-making role for which the intervention was designed to be "
                    "used/for (e.g., informs, augments, replaces clinical management)",
                ),
            ),
        ),
    ),
    (
        "cautioned_out_of_scope_use",
        Note("hti1.3", "(3) Cautioned out-of-scope use of the intervention"),
        (
            (
                "populations_and_tasks",
                Note(
                    "hti1.3.i",
                    "Description of tasks, situations, or populations where a user is cautioned "
                    "against applying the intervention",
                ),
            ),
            (
                "known_risks_and_limitations",
                Note(
                    "hti1.3.ii",
                    "Known risks, inappropriate settings, inappropriate uses, or known limitations of the intervention",
                ),
            ),
        ),
    ),
    (
        "development_details_and_input_features",
        Note("hti1.4", "(4) Intervention development details and input features"),
        (
            (
                "inclusion_exclusion",
                Note("hti1.4.i", "Exclusion and inclusion criteria that influenced the training data set"),
            ),
            (
                "demographic_variables_used_as_inputs",
                Note("hti1.4.ii", "Use of variables in %(ref)s as input features", ref=_DEMOGRAPHICS_REF),
            ),
            (
                "demographic_representativeness",
                Note(
                    "hti1.4.iii",
                    "Description of demographic representativeness according to variables "
                    "in %(ref)s including, at a minimum, those used as input "
                    "features in the intervention",
                    ref=_DEMOGRAPHICS_REF,
                ),
            ),
            (
                "relevance_to_deployed_setting",
                Note("hti1.4.iv", "Description of relevance of training data to intended deployed setting"),
            ),
        ),
    ),
    (
        "fairness_process",
        Note("hti1.5", "(5) Process used to ensure fairness in development of the intervention"),
        (
            (
                "approach",
                Note(
                    "hti1.5.i",
                    "Description of the approach the intervention developer has taken to ensure that the "
                    "intervention's output is fair",
                ),
            ),
            ("bias_management", Note("hti1.5.ii", "Description of approaches to manage, reduce, or eliminate bias")),
        ),
    ),
    (
        "external_validation",
        Note("hti1.6", "(6) External validation process"),
        (
            (
                "data_source",
                Note(
                    "hti1.6.i",
                    "Description of the data source, clinical setting, or environment where an intervention's "
                    "validity and fairness has been assessed, other than the source of training and testing data",
                ),
            ),
            ("party", Note("hti1.6.ii", "Party that conducted the external testing")),
            (
                "demographic_representativeness",
                Note(
                    "hti1.6.iii",
                    "Description of demographic representativeness of external data "
                    "according to variables in %(ref)s including, at a minimum, "
                    "those used as input features in the intervention",
                    ref=_DEMOGRAPHICS_REF,
                ),
            ),
            ("process", Note("hti1.6.iv", "Description of external validation process")),
        ),
    ),
    (
        "quantitative_performance",
        Note("hti1.7", "(7) Quantitative measures of performance"),
        (
            (
                "validity_same_source",
                Note(
                    "hti1.7.i",
                    "Validity of intervention in test data derived from the same source as the initial training data",
                ),
            ),
            (
                "fairness_same_source",
                Note(
                    "hti1.7.ii",
                    "Fairness of intervention in test data derived from the same source as the initial training data",
                ),
            ),
            (
                "validity_external",
                Note(
                    "hti1.7.iii",
                    "Validity of intervention in data external to or from a different source than the "
                    "initial training data",
                ),
            ),
            (
                "fairness_external",
                Note(
                    "hti1.7.iv",
                    "Fairness of intervention in data external to or from a different source than the "
                    "initial training data",
                ),
            ),
            (
                "outcome_evaluations",
                Note(
                    "hti1.7.v",
                    "References to evaluation of use of the intervention on outcomes, including "
                    "bibliographic citations or hyperlinks to evaluations of how well the intervention "
                    "reduced morbidity, mortality, length of stay, or other outcomes",
                ),
            ),
        ),
    ),
    (
        "ongoing_maintenance",
        Note("hti1.8", "(8) Ongoing maintenance of intervention implementation and use"),
        (
            (
                "validity_monitoring",
                Note(
                    "hti1.8.i",
                    "Description of process and frequency by which the intervention's validity is monitored over time",
                ),
            ),
            ("validity_local_data", Note("hti1.8.ii", "Validity of intervention in local data")),
            (
                "fairness_monitoring",
                Note(
                    "hti1.8.iii",
                    "Description of the process and frequency by which the intervention's fairness is monitored "
                    "over time",
                ),
            ),
            ("fairness_local_data", Note("hti1.8.iv", "Fairness of intervention in local data")),
        ),
    ),
    (
        "update_schedule",
        Note("hti1.9", "(9) Update and continued validation or fairness assessment schedule"),
        (
            (
                "update_process",
                Note("hti1.9.i", "Description of process and frequency by which the intervention is updated"),
            ),
            (
                "correction_frequency",
                Note(
                    "hti1.9.ii",
                    "Description of frequency by which the intervention's performance is corrected "
                    "when risks related to validity and fairness are identified",
                ),
            ),
        ),
    ),
)


# No monitoring report format exists yet (a `monitor` command is being built for the service):
# until one does, the local-data attributes say so and how the figures are obtained.
def _no_monitoring_report(what: Note, by: Note | str = "") -> Note:
    return Note(
        "model_card.no_monitoring_report",
        "no local monitoring report loaded: %(what)s of this model version in local use has not been measured. "
        "To measure it, put a cohort of local patients treated since deployment in the training-table format "
        "(models/README.md 'Cohort columns', with their observed outcomes) and run "
        "python -m models report --artifact <this model> --data <that file> --out <dir>: it compares predicted "
        "with observed primary resistance (discrimination, calibration) and second-line survival%(by)s",
        what=what,
        by=by,
    )


_DEMOGRAPHIC_LABELS = {  # keys of the demographics tables, and the words for them
    "male": Note("model_card.male", "male"),
    "age_over_50": Note("model_card.age_over_50", "age > 50 years"),
    "hbv": Note("model_card.hbv", "HBV aetiology"),
    "bclc_c": Note("model_card.bclc_c", "BCLC stage C"),
    "child_pugh_b": Note("model_card.child_pugh_b", "Child-Pugh B"),
}
_NOT_IN_TABLE = Note(
    "model_card.not_in_table",
    "race, ethnicity, language, sexual orientation, gender identity, social determinants of health, "
    "health status assessments",
)


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.1f}%)"


def _listed(items: list[Note]) -> Note | str:
    """Notes as one comma-separated note ("" for none)."""
    if not items:
        return ""
    listed = items[0]
    for item in items[1:]:
        listed = Note("model_card.list", "%(first)s, %(more)s", first=listed, more=item)
    return listed


def _study_demographics(ev: Evidence) -> dict[str, Any]:
    t1 = ev.table1_counts
    shares: dict[str, Any] = {
        _DEMOGRAPHIC_LABELS[c]: _pct(t1[c][0] + t1[c][1], ev.cohort.n) for c in DEMOGRAPHIC_COLUMNS
    }
    return {
        "country": Note("model_card.country", "China (two centres: Guizhou; Beijing)"),
        **shares,
        "race_ethnicity": Note("model_card.race_ethnicity", "not reported by the study (Chinese centres)"),
    }


def _training_demographics(training: TrainingSummary) -> dict[str, Any] | Note:
    """The training data's own demographics from the artifact, or why there are none."""
    if training.demographics:
        no_values = Note("model_card.no_values", "column present, no values")
        shares: dict[str, Any] = {
            _DEMOGRAPHIC_LABELS[c]: (_pct(d.count, d.recorded) if d.recorded else no_values)
            for c in DEMOGRAPHIC_COLUMNS
            if (d := training.demographics.get(c)) is not None
        }
        missing = [_DEMOGRAPHIC_LABELS[c] for c in DEMOGRAPHIC_COLUMNS if c not in training.demographics]
        if missing:
            shares[Note("model_card.not_in_training_table", "not in the training table")] = _listed(missing)
        shares[Note("model_card.not_recorded_label", "not recorded")] = Note(
            "model_card.not_recorded", "%(what)s (the training table has no such columns)", what=_NOT_IN_TABLE
        )
        return shares
    if training.reconstructed:
        return Note(
            "model_card.demographics_reconstructed",
            "the study's Table 1 counts, which the reconstruction reproduces exactly "
            "(python -m models report checks them)",
        )
    return Note(
        "model_card.demographics_not_recorded",
        "not recorded in this artifact: the training run stored no counts of "
        "%(columns)s (the cohort-table columns it reads them from); "
        "the study's figures are not this model's training data",
        columns=", ".join(DEMOGRAPHIC_COLUMNS),
    )


def _training_section(artifact: BundleArtifact, training: TrainingSummary) -> dict[str, Any]:
    md = artifact.metadata
    return {
        "source": md.training_data,
        "reconstructed_from_the_study": training.reconstructed,
        "sha256": md.training_data_sha256,
        "trained": training.created,
        "recalibrated_from": training.recalibrated_from or Note("model_card.fitted_in_full", "no: fitted in full"),
        "n": training.n,
        "primary_resistance": _pct(training.primary_resistance, training.n),
        "second_line_patients": training.second_line_patients,
        "second_line_events": {"pfs": training.sl_pfs_events, "os": training.sl_os_events},
        "demographics": _training_demographics(training),
    }


def _enrolment(ev: Evidence) -> Note:
    c = ev.cohort
    return Note(
        "model_card.enrolment",
        "%(start)s to %(end)s, data cut-off %(cutoff)s",
        start=c.enrolment[0],
        end=c.enrolment[1],
        cutoff=c.data_cutoff,
    )


def _study_section(ev: Evidence) -> dict[str, Any]:
    c = ev.cohort
    return {
        "what": Note(
            "model_card.study_what",
            "the published cohort of the source study; its figures are the study's, not this model's training data",
        ),
        "patients": c.n,
        "primary_resistance": _pct(c.n_primary, c.n),
        "secondary_resistance": _pct(c.n_secondary, c.n),
        "enrolment": _enrolment(ev),
        "demographics": _study_demographics(ev),
    }


def _fitted_to(training: TrainingSummary) -> Note:
    if training.reconstructed:
        return Note(
            "model_card.fitted_to_reconstruction",
            "a cohort reconstructed from the study's published figures (%(source)s)",
            source=training.source,
        )
    if training.recalibrated_from:
        return Note(
            "model_card.recalibrated_on",
            "recalibrated (coefficients of model %(model)s) on %(source)s (n = %(n)s, trained %(date)s)",
            model=training.recalibrated_from,
            source=training.source,
            n=training.n,
            date=training.created_date,
        )
    return Note(
        "model_card.fitted_to",
        "fitted to %(source)s (n = %(n)s, trained %(date)s)",
        source=training.source,
        n=training.n,
        date=training.created_date,
    )


def _not_the_study(training: TrainingSummary) -> Note:
    return Note(
        "model_card.not_the_study",
        "this model was %(fitted)s, not to the study's cohort: its figures describe those data; see training_data",
        fitted=_fitted_to(training),
    )


def model_card(artifact: BundleArtifact) -> dict[str, Any]:
    ev = load_evidence()
    md = artifact.metadata
    res = artifact.resistance
    training = TrainingSummary.of(artifact)
    reconstructed = training.reconstructed
    evaluation = res.evaluation
    citation = f"{ev.source.citation} DOI {ev.source.doi} ({ev.source.url})"
    study_criteria = [
        Note(
            "model_card.criteria_included",
            "HCC by pathology or two imaging techniques; Child-Pugh A or B; >= 1 RECIST 1.1 measurable lesion",
        ),
        Note(
            "model_card.criteria_excluded",
            "excluded: other primary tumour, non-adherence, surgery, aetiology other than HBV/HCV, "
            "unacceptable toxicity, incomplete follow-up",
        ),
        Note("model_card.criteria_enrolment", "enrolment %(enrolment)s", enrolment=_enrolment(ev)),
    ]
    inputs = [*res.features, *artifact.pfs.covariates, *artifact.os.covariates]
    demographic_inputs = sorted({f for f in inputs if f in DEMOGRAPHIC_COLUMNS})
    fairness = md.evaluation.get("fairness")
    subgroups = Note("model_card.by_subgroup", ", by sex, age (> 50 years) and aetiology (HBV, HCV)")

    def monitoring_process(by: Note | str) -> Note:
        return Note(
            "model_card.monitoring_process",
            "at least yearly, and after every retraining or recalibration, by the deploying organisation's CDS "
            "governance team: compare predicted with observed primary-resistance rates and second-line survival in "
            "local patients%(by)s; the model version of every assessment is in the audit log "
            "(python -m cds_service audit-report)",
            by=by,
        )

    validity_local = _no_monitoring_report(Note("model_card.validity", "validity"))
    if not reconstructed:
        validity_local = Note(
            "model_card.validity_local_fitted",
            "this model was fitted to %(source)s: its performance on those data is "
            "validity_same_source, not validity in use; %(report)s",
            source=training.source,
            report=validity_local,
        )
    no_external = Note(
        "model_card.no_external", "none: no external validation has been performed (see external_validation)"
    )
    developer = Note("model_card.developer", "hcc-sorafenib-cds project (models package)")
    if not reconstructed:
        developer = Note(
            "model_card.developer_trained",
            "%(developer)s; this model version %(fitted)s with python -m models train",
            developer=developer,
            fitted=_fitted_to(training),
        )
    card = {
        "name": Note(
            "model_card.name", "HCC sorafenib resistance: primary-resistance risk and second-line survival estimates"
        ),
        "model_version": md.model_version,
        "created": md.created,
        "evidence": {"citation": citation, "doi": ev.source.doi},
        "training_data": _training_section(artifact, training),
        "study": _study_section(ev),
        "hti1_source_attributes": {
            "details_and_output": {
                "developer": Note(
                    "model_card.contact",
                    "%(developer)s; contact: the deploying organisation's CDS governance team",
                    developer=developer,
                ),
                "funding_source": Note(
                    "model_card.funding_source",
                    "not declared for this software; the source study's funding is reported in the "
                    "publication (DOI %(doi)s)",
                    doi=ev.source.doi,
                ),
                "output_description": Note(
                    "model_card.output_description",
                    "(1) probability of primary resistance to first-line sorafenib (radiological progression within "
                    "%(months)s months) with a 95%% CI and per-marker contributions; "
                    "(2) model-based PFS and OS curves after sorafenib failure for TKI alone vs TKI + PD-1 inhibitor, "
                    "with medians and 6/12/24-month survival and 95%% CIs.",
                    months=ev.cohort.primary_resistance_window_months,
                ),
                "output_type": Note("model_card.output_type", "prediction (risk probability; survival estimates)"),
            },
            "purpose": {
                "intended_use": Note(
                    "model_card.intended_use",
                    "inform the oncologist's discussion of first-line sorafenib and of second-line choice "
                    "after sorafenib failure, alongside guidelines and clinical judgement",
                ),
                "intended_patients": Note(
                    "model_card.intended_patients",
                    "adults with unresectable or advanced HCC (HBV/HCV aetiology, Child-Pugh A/B, "
                    "RECIST-measurable disease) considered for or progressing on first-line sorafenib",
                ),
                "intended_users": Note("model_card.intended_users", "oncologists and hepatologists"),
                "decision_making_role": Note(
                    "model_card.decision_making_role", "informs; does not replace clinical management"
                ),
            },
            "cautioned_out_of_scope_use": {
                "populations_and_tasks": [
                    Note(
                        "model_card.out_of_scope_population",
                        "non-viral aetiology (alcohol, MASLD), Child-Pugh C, resectable or transplant candidates",
                    ),
                    Note(
                        "model_card.out_of_scope_toxicity",
                        "patients who stopped sorafenib for toxicity rather than progression",
                    ),
                    Note(
                        "model_card.out_of_scope_first_line",
                        "first-line regimens other than sorafenib (atezolizumab + bevacizumab, lenvatinib, etc.)",
                    ),
                    Note(
                        "model_card.out_of_scope_second_line",
                        "second-line agents outside the study (cabozantinib, ramucirumab, nivolumab + ipilimumab)",
                    ),
                    Note(
                        "model_card.out_of_scope_sole_basis",
                        "use as the sole basis for withholding or choosing a treatment",
                    ),
                ],
                "known_risks_and_limitations": [
                    Note(
                        "model_card.modest_discrimination",
                        "discrimination of the primary-resistance model is modest "
                        "(bootstrap optimism-corrected AUC %(corrected)s, 10-fold cross-validated "
                        "%(cv)s; the apparent AUC %(apparent)s on the fitting data overstates it); "
                        "the study authors call the predictive value of AFP and ALT limited",
                        corrected=f"{evaluation.auc_optimism_corrected:.2f}",
                        cv=f"{evaluation.auc_cv:.2f}",
                        apparent=f"{evaluation.auc:.2f}",
                    ),
                    Note(
                        "model_card.retrospective",
                        "the source study is retrospective and two-centre; no prospective or external validation",
                    ),
                    Note(
                        "model_card.observational",
                        "the survival comparison is observational: regimens were not randomised",
                    ),
                    SYNTHETIC_NOTE if reconstructed else _not_the_study(training),
                ],
            },
            "development_details_and_input_features": {
                "inclusion_exclusion": (
                    {"the_study_which_the_reconstruction_follows": study_criteria}
                    if reconstructed
                    else {
                        "training_data": Note(
                            "model_card.selection_not_recorded",
                            "%(source)s: selected by whoever assembled it; the selection is not "
                            "recorded in the artifact (python -m models train keeps every row that passes "
                            "its checks, models/README.md 'Retraining')",
                            source=training.source,
                        ),
                        "the_study_for_comparison": study_criteria,
                    }
                ),
                "demographic_variables_used_as_inputs": (
                    Note(
                        "model_card.demographic_inputs",
                        "model inputs: %(inputs)s; demographic inputs: %(demographic)s",
                        inputs=", ".join(dict.fromkeys(inputs)),
                        demographic=", ".join(demographic_inputs),
                    )
                    if demographic_inputs
                    else Note(
                        "model_card.no_demographic_inputs",
                        "model inputs: %(inputs)s; none is a demographic variable (no race, ethnicity, language, "
                        "sexual orientation, gender identity, sex, date of birth or age, social determinants or "
                        "health status assessment)",
                        inputs=", ".join(dict.fromkeys(inputs)),
                    )
                ),
                "demographic_representativeness": {
                    "training_data": _training_demographics(training),
                    "the_study": _study_demographics(ev),
                },
                "relevance_to_deployed_setting": (
                    Note(
                        "model_card.relevance_reconstructed",
                        "the source cohort is Chinese, predominantly HBV and male; populations with other aetiologies, "
                        "sex ratios or treatment patterns may differ. Hospitals should recalibrate or retrain on local "
                        "data (python -m models train --data ... [--recalibrate]) before relying on absolute risks.",
                    )
                    if reconstructed
                    else Note(
                        "model_card.relevance_trained",
                        "this model was %(fitted)s: it is relevant to the setting those patients came "
                        "from while its population and treatment patterns stay as they were; the study's cohort "
                        "(Chinese, predominantly HBV and male) is not its training data",
                        fitted=_fitted_to(training),
                    )
                ),
            },
            "fairness_process": {
                "approach": (
                    Note(
                        "model_card.fairness_reconstructed",
                        "inputs are restricted to the published clinical markers; no demographic inputs. "
                        "Subgroup performance by sex, age or aetiology cannot be assessed on the reconstruction (its "
                        "features are drawn independently within resistance groups), and must be assessed on local "
                        "data.",
                    )
                    if reconstructed
                    else Note(
                        "model_card.fairness_trained",
                        "inputs are restricted to the published clinical markers; no demographic inputs. "
                        "Subgroup performance by sex, age or aetiology is stated under fairness_same_source when "
                        "training recorded it.",
                    )
                ),
                "bias_management": [
                    (
                        Note(
                            "model_card.bias_cohort_study",
                            "cohort composition: Chinese centres, HBV-dominated, mostly male "
                            "(see demographic_representativeness)",
                        )
                        if reconstructed
                        else Note(
                            "model_card.bias_cohort_training",
                            "cohort composition of the training data: see demographic_representativeness",
                        )
                    ),
                    Note(
                        "model_card.bias_survivorship",
                        "survivorship: second-line analyses include only patients fit enough to receive second-line "
                        "therapy",
                    ),
                    Note(
                        "model_card.bias_intervals",
                        "confidence intervals are shown with every estimate; unknown covariates are marginalised and "
                        "named",
                    ),
                ],
            },
            "external_validation": {
                "data_source": Note(
                    "model_card.external_data_source", "none: no external validation of this model has been performed"
                ),
                "party": Note(
                    "model_card.external_party",
                    "none: no external testing has been performed, so there is no testing party",
                ),
                "demographic_representativeness": Note(
                    "model_card.external_demographics", "not applicable: no external data have been tested"
                ),
                "process": Note(
                    "model_card.external_process",
                    "not performed. Recommended before clinical use: compare this model's predictions with "
                    "observed outcomes in patients outside its training data (%(source)s), for "
                    "discrimination and calibration, overall and by sex, age and aetiology",
                    source=training.source,
                ),
            },
            "quantitative_performance": {
                "validity_same_source": {
                    "data": Note(
                        "model_card.internal_validation",
                        "internal validation on the training data (%(source)s; n = %(n)s): "
                        "%(resamples)s-resample bootstrap and 10-fold cross-validation",
                        source=training.source,
                        n=training.n,
                        resamples=evaluation.bootstrap_resamples,
                    ),
                    "primary_resistance_auc_apparent": evaluation.auc,
                    "primary_resistance_auc_bootstrap_ci": list(evaluation.auc_ci),
                    "primary_resistance_auc_optimism_corrected": evaluation.auc_optimism_corrected,
                    "primary_resistance_auc_cv": evaluation.auc_cv,
                    "primary_resistance_calibration_slope_cv": evaluation.calibration_slope_cv,
                    "primary_resistance_calibration_in_the_large_cv": evaluation.calibration_intercept_cv,
                    "second_line_pfs_c_index_harrell": artifact.pfs.c_index,
                    "second_line_pfs_c_index_bootstrap_ci": list(artifact.pfs.c_index_ci),
                    "second_line_pfs_c_index_optimism_corrected": artifact.pfs.c_index_optimism_corrected,
                    "second_line_os_c_index_harrell": artifact.os.c_index,
                    "second_line_os_c_index_bootstrap_ci": list(artifact.os.c_index_ci),
                    "second_line_os_c_index_optimism_corrected": artifact.os.c_index_optimism_corrected,
                },
                "fairness_same_source": fairness
                if fairness
                else (
                    Note(
                        "model_card.fairness_not_assessable",
                        "not assessable on the reconstruction (see fairness_process)",
                    )
                    if reconstructed
                    else Note(
                        "model_card.fairness_not_computed",
                        "not computed: training recorded no subgroup performance for this model; compute "
                        "discrimination and calibration by sex, age and aetiology on %(source)s",
                        source=training.source,
                    )
                ),
                "validity_external": no_external,
                "fairness_external": no_external,
                "outcome_evaluations": Note(
                    "model_card.outcome_evaluations",
                    "none: no evaluation of this tool's use on morbidity, mortality or other "
                    "outcomes exists; the source study (prognostic, not of this tool): %(citation)s",
                    citation=citation,
                ),
            },
            "ongoing_maintenance": {
                "validity_monitoring": monitoring_process(""),
                "validity_local_data": validity_local,
                "fairness_monitoring": monitoring_process(subgroups),
                "fairness_local_data": _no_monitoring_report(
                    Note("model_card.fairness", "fairness"),
                    Note(
                        "model_card.by_subgroup_rows",
                        ", once for each subgroup's rows (sex, age > 50 years, aetiology HBV/HCV): report does "
                        "not split by subgroup itself",
                    ),
                ),
            },
            "update_schedule": {
                "update_process": Note(
                    "model_card.update_process",
                    "reviewed yearly and whenever the evidence base changes; an update is a new artifact "
                    "(python -m models train [--recalibrate]) with its own version and training-data "
                    "SHA-256, rolled out by setting CDS_MODEL_DIR",
                ),
                "correction_frequency": Note(
                    "model_card.correction_frequency",
                    "at each yearly review and whenever monitoring shows drift: recalibrate "
                    "(--recalibrate) on calibration drift; retrain or withdraw when discrimination "
                    "degrades or the report flags figures",
                ),
            },
        },
        "tripod_ai": {
            "title_and_aim": Note(
                "model_card.title_and_aim",
                "Prediction of primary sorafenib resistance and of second-line PFS/OS by regimen in HCC",
            ),
            "source_of_data": Note(
                "model_card.source_of_data",
                "%(data)s; evidence: %(citation)s",
                data=md.training_data,
                citation=citation,
            ),
            "participants": (
                Note(
                    "model_card.participants_reconstructed",
                    "%(n)s patients, %(primary)s with primary resistance; second line: %(second)s patients "
                    "(the study's %(study_n)s patients, reconstructed)",
                    n=training.n,
                    primary=training.primary_resistance,
                    second=training.second_line_patients,
                    study_n=ev.cohort.n,
                )
                if reconstructed
                else Note(
                    "model_card.participants_trained",
                    "%(n)s patients, %(primary)s with primary resistance; second line: %(second)s patients "
                    "(the study, not this model's data: %(study_n)s patients, %(study_primary)s primary)",
                    n=training.n,
                    primary=training.primary_resistance,
                    second=training.second_line_patients,
                    study_n=ev.cohort.n,
                    study_primary=ev.cohort.n_primary,
                )
            ),
            "outcomes": {
                "primary_resistance": Note(
                    "model_card.outcome_primary",
                    "RECIST 1.1 progression within %(months)s months of starting sorafenib",
                    months=ev.cohort.primary_resistance_window_months,
                ),
                "second_line_pfs": Note("model_card.outcome_pfs", "progression or death from second-line start"),
                "second_line_os": Note("model_card.outcome_os", "death from any cause from second-line start"),
            },
            "predictors": Note(
                "model_card.predictors", "see hti1_source_attributes.development_details_and_input_features"
            ),
            "sample_size": {"n": md.n, "events": md.events},
            "missing_data": Note(
                "model_card.missing_data",
                "complete cases in training; at prediction, unknown tumour size, tumour number or "
                "resistance type are marginalised over training prevalence and reported as such; "
                "missing AFP/ALT cannot be scored",
            ),
            "analysis": Note(
                "model_card.analysis",
                "unpenalised logistic regression (scikit-learn), CIs by the delta method from the inverse Fisher "
                "information; Cox proportional hazards (lifelines) with Breslow baseline, pointwise CIs by the delta "
                "method on log(-log S); bootstrap and 10-fold cross-validation for internal validation",
            ),
            "model_updating": Note(
                "model_card.model_updating",
                "python -m models train --data FILE [--recalibrate] writes a new versioned artifact",
            ),
            "limitations": Note("model_card.limitations", "see hti1_source_attributes.cautioned_out_of_scope_use"),
            "software": md.software,
        },
        "metadata": md.model_dump(mode="json"),
    }
    return card


# How the card's keys read as labels (a key not here reads as itself, underscores as spaces).
LABELS = {
    "source": Note("model_card.label.source", "source"),
    "reconstructed_from_the_study": Note(
        "model_card.label.reconstructed_from_the_study", "reconstructed from the study"
    ),
    "sha256": Note("model_card.label.sha256", "sha256"),
    "trained": Note("model_card.label.trained", "trained"),
    "recalibrated_from": Note("model_card.label.recalibrated_from", "recalibrated from"),
    "n": Note("model_card.label.n", "n"),
    "primary_resistance": Note("model_card.label.primary_resistance", "primary resistance"),
    "secondary_resistance": Note("model_card.label.secondary_resistance", "secondary resistance"),
    "second_line_patients": Note("model_card.label.second_line_patients", "second line patients"),
    "second_line_events": Note("model_card.label.second_line_events", "second line events"),
    "pfs": Note("model_card.label.pfs", "pfs"),
    "os": Note("model_card.label.os", "os"),
    "demographics": Note("model_card.label.demographics", "demographics"),
    "what": Note("model_card.label.what", "what"),
    "patients": Note("model_card.label.patients", "patients"),
    "enrolment": Note("model_card.label.enrolment", "enrolment"),
    "country": Note("model_card.label.country", "country"),
    "race_ethnicity": Note("model_card.label.race_ethnicity", "race ethnicity"),
    "the_study_which_the_reconstruction_follows": Note(
        "model_card.label.the_study_which_the_reconstruction_follows", "the study which the reconstruction follows"
    ),
    "training_data": Note("model_card.label.training_data", "training data"),
    "the_study_for_comparison": Note("model_card.label.the_study_for_comparison", "the study for comparison"),
    "the_study": Note("model_card.label.the_study", "the study"),
    "data": Note("model_card.label.data", "data"),
    "primary_resistance_auc_apparent": Note(
        "model_card.label.primary_resistance_auc_apparent", "primary resistance auc apparent"
    ),
    "primary_resistance_auc_bootstrap_ci": Note(
        "model_card.label.primary_resistance_auc_bootstrap_ci", "primary resistance auc bootstrap ci"
    ),
    "primary_resistance_auc_optimism_corrected": Note(
        "model_card.label.primary_resistance_auc_optimism_corrected", "primary resistance auc optimism corrected"
    ),
    "primary_resistance_auc_cv": Note("model_card.label.primary_resistance_auc_cv", "primary resistance auc cv"),
    "primary_resistance_calibration_slope_cv": Note(
        "model_card.label.primary_resistance_calibration_slope_cv", "primary resistance calibration slope cv"
    ),
    "primary_resistance_calibration_in_the_large_cv": Note(
        "model_card.label.primary_resistance_calibration_in_the_large_cv",
        "primary resistance calibration in the large cv",
    ),
    "second_line_pfs_c_index_harrell": Note(
        "model_card.label.second_line_pfs_c_index_harrell", "second line pfs c index harrell"
    ),
    "second_line_pfs_c_index_bootstrap_ci": Note(
        "model_card.label.second_line_pfs_c_index_bootstrap_ci", "second line pfs c index bootstrap ci"
    ),
    "second_line_pfs_c_index_optimism_corrected": Note(
        "model_card.label.second_line_pfs_c_index_optimism_corrected", "second line pfs c index optimism corrected"
    ),
    "second_line_os_c_index_harrell": Note(
        "model_card.label.second_line_os_c_index_harrell", "second line os c index harrell"
    ),
    "second_line_os_c_index_bootstrap_ci": Note(
        "model_card.label.second_line_os_c_index_bootstrap_ci", "second line os c index bootstrap ci"
    ),
    "second_line_os_c_index_optimism_corrected": Note(
        "model_card.label.second_line_os_c_index_optimism_corrected", "second line os c index optimism corrected"
    ),
    "title_and_aim": Note("model_card.label.title_and_aim", "title and aim"),
    "source_of_data": Note("model_card.label.source_of_data", "source of data"),
    "participants": Note("model_card.label.participants", "participants"),
    "outcomes": Note("model_card.label.outcomes", "Outcomes"),
    "second_line_pfs": Note("model_card.label.second_line_pfs", "second line pfs"),
    "second_line_os": Note("model_card.label.second_line_os", "second line os"),
    "predictors": Note("model_card.label.predictors", "predictors"),
    "sample_size": Note("model_card.label.sample_size", "Sample size"),
    "events": Note("model_card.label.events", "events"),
    "os_from_sorafenib": Note("model_card.label.os_from_sorafenib", "os from sorafenib"),
    "sl_pfs": Note("model_card.label.sl_pfs", "sl pfs"),
    "sl_os": Note("model_card.label.sl_os", "sl os"),
    "missing_data": Note("model_card.label.missing_data", "missing data"),
    "analysis": Note("model_card.label.analysis", "analysis"),
    "model_updating": Note("model_card.label.model_updating", "model updating"),
    "limitations": Note("model_card.label.limitations", "limitations"),
    "software": Note("model_card.label.software", "Software"),
}
_YES, _NO = Note("model_card.yes", "True"), Note("model_card.no", "False")
_NOT_AVAILABLE = Note("model_card.not_available", "not available")


def _english(text: str) -> str:
    return str(text)


def _label(key: object, say: Say) -> str:
    if isinstance(key, str) and key in LABELS:
        return say(LABELS[key])
    return say(key) if isinstance(key, Note) else str(key).replace("_", " ")


def _render(value: object, say: Say, indent: int = 0) -> list[str]:
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            label = _label(k, say)
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}- **{label}**:")
                lines += _render(v, say, indent + 1)
            else:
                lines.append(f"{pad}- **{label}**: {_scalar(v, say)}")
        return lines
    if isinstance(value, list):
        lines = []
        for v in value:
            if isinstance(v, (dict, list)):
                lines += _render(v, say, indent)
            else:
                lines.append(f"{pad}- {_scalar(v, say)}")
        return lines
    return [f"{pad}- {_scalar(value, say)}"]


def _scalar(v: object, say: Say) -> str:
    if v is None:
        return say(_NOT_AVAILABLE)
    if isinstance(v, bool):
        return say(_YES if v else _NO)
    if isinstance(v, float):
        return f"{v:.3f}"
    return say(v) if isinstance(v, str) else str(v)


def model_card_markdown(artifact: BundleArtifact, say: Say = _english) -> str:
    """The card as Markdown; ``say`` words each note (``cards.notes.say`` in the reader's language)."""
    card = model_card(artifact)
    training = TrainingSummary.of(artifact)
    banner = (
        SYNTHETIC_NOTE
        if training.reconstructed
        else Note(
            "model_card.banner_trained",
            "This model was %(fitted)s, not to the study's cohort: everything below describes that "
            "model; the study's figures are labelled as the study's.",
            fitted=_fitted_to(training),
        )
    )
    lines = [
        say(Note("model_card.title", "# Model card: %(name)s", name=card["name"])),
        "",
        say(
            Note(
                "model_card.version_line",
                "Version %(version)s, created %(created)s. Evidence: %(citation)s.",
                version=card["model_version"],
                created=card["created"],
                citation=card["evidence"]["citation"],
            )
        ),
        "",
        f"> {say(banner)}",
        "",
        say(Note("model_card.heading.training", "## This model's training data (from its artifact)")),
        "",
        *_render(card["training_data"], say),
        "",
        say(Note("model_card.heading.study", "## The study (its figures, not this model's)")),
        "",
        *_render(card["study"], say),
        "",
        say(Note("model_card.heading.hti1", "## ONC HTI-1 source attributes (45 CFR 170.315(b)(11)(iv)(B))")),
        "",
    ]
    attributes = card["hti1_source_attributes"]
    for key, title, items in HTI1_PREDICTIVE_SOURCE_ATTRIBUTES:
        lines += [f"### {say(title)}", ""]
        for number, (attribute, wording) in enumerate(items, start=1):
            label = Note("hti1.item", "(%(number)s) %(wording)s", number=_ROMAN[number], wording=wording)
            lines += _render({label: attributes[key][attribute]}, say)
        lines.append("")
    lines += [say(Note("model_card.heading.tripod", "## TRIPOD+AI items")), ""]
    for section, content in card["tripod_ai"].items():
        if isinstance(content, dict):
            lines += [f"### {_label(section, say)}", ""] + _render(content, say) + [""]
        else:
            lines += _render({section: content}, say) + [""]
    return "\n".join(lines)


_ROMAN = {1: "i", 2: "ii", 3: "iii", 4: "iv", 5: "v"}
