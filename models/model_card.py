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
"""

from __future__ import annotations

from hcc_evidence import load_evidence
from models.artifacts import DEMOGRAPHIC_COLUMNS, BundleArtifact, TrainingSummary

SYNTHETIC_NOTE = (
    "The default models are fitted on a synthetic cohort reconstructed from the study's published "
    "aggregates (Table 1 counts, logistic ORs, Kaplan-Meier medians and landmarks, Cox HRs); it is not "
    "patient data. Their performance figures describe that reconstruction, not a real population."
)

_DEMOGRAPHICS_REF = "paragraph (b)(11)(iv)(A)(5)-(13)"

# (key, title, ((attribute key, the regulation's wording), ...)) for 45 CFR 170.315(b)(11)(iv)(B)(1)-(9).
HTI1_PREDICTIVE_SOURCE_ATTRIBUTES: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "details_and_output",
        "(1) Details and output of the intervention",
        (
            ("developer", "Name and contact information for the intervention developer"),
            ("funding_source", "Funding source of the technical implementation for the intervention(s) development"),
            ("output_description", "Description of value that the intervention produces as an output"),
            (
                "output_type",
                "Whether the intervention output is a prediction, classification, recommendation, "
                "evaluation, analysis, or other type of output",
            ),
        ),
    ),
    (
        "purpose",
        "(2) Purpose of the intervention",
        (
            ("intended_use", "Intended use of the intervention"),
            ("intended_patients", "Intended patient population(s) for the intervention's use"),
            ("intended_users", "Intended user(s)"),
            (
                "decision_making_role",
                "Intended decision-making role for which the intervention was designed to be "
                "used/for (e.g., informs, augments, replaces clinical management)",
            ),
        ),
    ),
    (
        "cautioned_out_of_scope_use",
        "(3) Cautioned out-of-scope use of the intervention",
        (
            (
                "populations_and_tasks",
                "Description of tasks, situations, or populations where a user is cautioned "
                "against applying the intervention",
            ),
            (
                "known_risks_and_limitations",
                "Known risks, inappropriate settings, inappropriate uses, or known limitations of the intervention",
            ),
        ),
    ),
    (
        "development_details_and_input_features",
        "(4) Intervention development details and input features",
        (
            ("inclusion_exclusion", "Exclusion and inclusion criteria that influenced the training data set"),
            ("demographic_variables_used_as_inputs", f"Use of variables in {_DEMOGRAPHICS_REF} as input features"),
            (
                "demographic_representativeness",
                f"Description of demographic representativeness according to variables "
                f"in {_DEMOGRAPHICS_REF} including, at a minimum, those used as input "
                "features in the intervention",
            ),
            ("relevance_to_deployed_setting", "Description of relevance of training data to intended deployed setting"),
        ),
    ),
    (
        "fairness_process",
        "(5) Process used to ensure fairness in development of the intervention",
        (
            (
                "approach",
                "Description of the approach the intervention developer has taken to ensure that the "
                "intervention's output is fair",
            ),
            ("bias_management", "Description of approaches to manage, reduce, or eliminate bias"),
        ),
    ),
    (
        "external_validation",
        "(6) External validation process",
        (
            (
                "data_source",
                "Description of the data source, clinical setting, or environment where an intervention's "
                "validity and fairness has been assessed, other than the source of training and testing data",
            ),
            ("party", "Party that conducted the external testing"),
            (
                "demographic_representativeness",
                f"Description of demographic representativeness of external data "
                f"according to variables in {_DEMOGRAPHICS_REF} including, at a minimum, "
                "those used as input features in the intervention",
            ),
            ("process", "Description of external validation process"),
        ),
    ),
    (
        "quantitative_performance",
        "(7) Quantitative measures of performance",
        (
            (
                "validity_same_source",
                "Validity of intervention in test data derived from the same source as the initial training data",
            ),
            (
                "fairness_same_source",
                "Fairness of intervention in test data derived from the same source as the initial training data",
            ),
            (
                "validity_external",
                "Validity of intervention in data external to or from a different source than the "
                "initial training data",
            ),
            (
                "fairness_external",
                "Fairness of intervention in data external to or from a different source than the "
                "initial training data",
            ),
            (
                "outcome_evaluations",
                "References to evaluation of use of the intervention on outcomes, including "
                "bibliographic citations or hyperlinks to evaluations of how well the intervention "
                "reduced morbidity, mortality, length of stay, or other outcomes",
            ),
        ),
    ),
    (
        "ongoing_maintenance",
        "(8) Ongoing maintenance of intervention implementation and use",
        (
            (
                "validity_monitoring",
                "Description of process and frequency by which the intervention's validity is monitored over time",
            ),
            ("validity_local_data", "Validity of intervention in local data"),
            (
                "fairness_monitoring",
                "Description of the process and frequency by which the intervention's fairness is monitored over time",
            ),
            ("fairness_local_data", "Fairness of intervention in local data"),
        ),
    ),
    (
        "update_schedule",
        "(9) Update and continued validation or fairness assessment schedule",
        (
            ("update_process", "Description of process and frequency by which the intervention is updated"),
            (
                "correction_frequency",
                "Description of frequency by which the intervention's performance is corrected "
                "when risks related to validity and fairness are identified",
            ),
        ),
    ),
)

# No monitoring report format exists yet (a `monitor` command is being built for the service):
# until one does, the local-data attributes say so and how the figures are obtained.
NO_MONITORING_REPORT = (
    "no local monitoring report loaded: {what} of this model version in local use has not been measured. "
    "To measure it, put a cohort of local patients treated since deployment in the training-table format "
    "(models/README.md 'Cohort columns', with their observed outcomes) and run "
    "python -m models report --artifact <this model> --data <that file> --out <dir>: it compares predicted "
    "with observed primary resistance (discrimination, calibration) and second-line survival{by}"
)

_DEMOGRAPHIC_LABELS = {
    "male": "male",
    "age_over_50": "age > 50 years",
    "hbv": "HBV aetiology",
    "bclc_c": "BCLC stage C",
    "child_pugh_b": "Child-Pugh B",
}
_NOT_IN_TABLE = (
    "race, ethnicity, language, sexual orientation, gender identity, social determinants of health, "
    "health status assessments"
)


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.1f}%)"


def _study_demographics(ev) -> dict:
    t1 = ev.table1_counts
    shares = {_DEMOGRAPHIC_LABELS[c]: _pct(t1[c][0] + t1[c][1], ev.cohort.n) for c in DEMOGRAPHIC_COLUMNS}
    return {
        "country": "China (two centres: Guizhou; Beijing)",
        **shares,
        "race_ethnicity": "not reported by the study (Chinese centres)",
    }


def _training_demographics(training: TrainingSummary) -> dict | str:
    """The training data's own demographics from the artifact, or why there are none."""
    if training.demographics:
        shares = {
            _DEMOGRAPHIC_LABELS[c]: (_pct(d.count, d.recorded) if d.recorded else "column present, no values")
            for c in DEMOGRAPHIC_COLUMNS
            if (d := training.demographics.get(c)) is not None
        }
        missing = [_DEMOGRAPHIC_LABELS[c] for c in DEMOGRAPHIC_COLUMNS if c not in training.demographics]
        if missing:
            shares["not in the training table"] = ", ".join(missing)
        shares["not recorded"] = f"{_NOT_IN_TABLE} (the training table has no such columns)"
        return shares
    if training.reconstructed:
        return (
            "the study's Table 1 counts, which the reconstruction reproduces exactly "
            "(python -m models report checks them)"
        )
    return (
        "not recorded in this artifact: the training run stored no counts of "
        f"{', '.join(DEMOGRAPHIC_COLUMNS)} (the cohort-table columns it reads them from); "
        "the study's figures are not this model's training data"
    )


def _training_section(artifact: BundleArtifact, training: TrainingSummary) -> dict:
    md = artifact.metadata
    return {
        "source": md.training_data,
        "reconstructed_from_the_study": training.reconstructed,
        "sha256": md.training_data_sha256,
        "trained": training.created,
        "recalibrated_from": training.recalibrated_from or "no: fitted in full",
        "n": training.n,
        "primary_resistance": _pct(training.primary_resistance, training.n),
        "second_line_patients": training.second_line_patients,
        "second_line_events": {"pfs": training.sl_pfs_events, "os": training.sl_os_events},
        "demographics": _training_demographics(training),
    }


def _study_section(ev) -> dict:
    c = ev.cohort
    return {
        "what": "the published cohort of the source study; its figures are the study's, not this model's training data",
        "patients": c.n,
        "primary_resistance": _pct(c.n_primary, c.n),
        "secondary_resistance": _pct(c.n_secondary, c.n),
        "enrolment": f"{c.enrolment[0]} to {c.enrolment[1]}, data cut-off {c.data_cutoff}",
        "demographics": _study_demographics(ev),
    }


def _fitted_to(training: TrainingSummary) -> str:
    if training.reconstructed:
        return f"a cohort reconstructed from the study's published figures ({training.source})"
    how = (
        f"recalibrated (coefficients of model {training.recalibrated_from}) on"
        if training.recalibrated_from
        else "fitted to"
    )
    return f"{how} {training.source} (n = {training.n}, trained {training.created_date})"


def model_card(artifact: BundleArtifact) -> dict:
    ev = load_evidence()
    md = artifact.metadata
    res = artifact.resistance
    training = TrainingSummary.of(artifact)
    reconstructed = training.reconstructed
    evaluation = res.evaluation
    citation = f"{ev.source.citation} DOI {ev.source.doi} ({ev.source.url})"
    study_criteria = [
        "HCC by pathology or two imaging techniques; Child-Pugh A or B; >= 1 RECIST 1.1 measurable lesion",
        "excluded: other primary tumour, non-adherence, surgery, aetiology other than HBV/HCV, "
        "unacceptable toxicity, incomplete follow-up",
        f"enrolment {ev.cohort.enrolment[0]} to {ev.cohort.enrolment[1]}, data cut-off {ev.cohort.data_cutoff}",
    ]
    inputs = [*res.features, *artifact.pfs.covariates, *artifact.os.covariates]
    demographic_inputs = sorted({f for f in inputs if f in DEMOGRAPHIC_COLUMNS})
    fairness = md.evaluation.get("fairness")
    monitoring_process = (
        "at least yearly, and after every retraining or recalibration, by the deploying organisation's CDS "
        "governance team: compare predicted with observed primary-resistance rates and second-line survival in "
        "local patients{by}; the model version of every assessment is in the audit log "
        "(python -m cds_service audit-report)"
    )
    validity_local = NO_MONITORING_REPORT.format(what="validity", by="")
    if not reconstructed:
        validity_local = (
            f"this model was fitted to {training.source}: its performance on those data is "
            f"validity_same_source, not validity in use; {validity_local}"
        )
    card = {
        "name": "HCC sorafenib resistance: primary-resistance risk and second-line survival estimates",
        "model_version": md.model_version,
        "created": md.created,
        "evidence": {"citation": citation, "doi": ev.source.doi},
        "training_data": _training_section(artifact, training),
        "study": _study_section(ev),
        "hti1_source_attributes": {
            "details_and_output": {
                "developer": "hcc-sorafenib-cds project (models package)"
                + ("" if reconstructed else f"; this model version {_fitted_to(training)} with python -m models train")
                + "; contact: the deploying organisation's CDS governance team",
                "funding_source": "not declared for this software; the source study's funding is reported in the "
                f"publication (DOI {ev.source.doi})",
                "output_description": (
                    "(1) probability of primary resistance to first-line sorafenib (radiological progression within "
                    f"{ev.cohort.primary_resistance_window_months} months) with a 95% CI and per-marker contributions; "
                    "(2) model-based PFS and OS curves after sorafenib failure for TKI alone vs TKI + PD-1 inhibitor, "
                    "with medians and 6/12/24-month survival and 95% CIs."
                ),
                "output_type": "prediction (risk probability; survival estimates)",
            },
            "purpose": {
                "intended_use": "inform the oncologist's discussion of first-line sorafenib and of second-line choice "
                "after sorafenib failure, alongside guidelines and clinical judgement",
                "intended_patients": "adults with unresectable or advanced HCC (HBV/HCV aetiology, Child-Pugh A/B, "
                "RECIST-measurable disease) considered for or progressing on first-line sorafenib",
                "intended_users": "oncologists and hepatologists",
                "decision_making_role": "informs; does not replace clinical management",
            },
            "cautioned_out_of_scope_use": {
                "populations_and_tasks": [
                    "non-viral aetiology (alcohol, MASLD), Child-Pugh C, resectable or transplant candidates",
                    "patients who stopped sorafenib for toxicity rather than progression",
                    "first-line regimens other than sorafenib (atezolizumab + bevacizumab, lenvatinib, etc.)",
                    "second-line agents outside the study (cabozantinib, ramucirumab, nivolumab + ipilimumab)",
                    "use as the sole basis for withholding or choosing a treatment",
                ],
                "known_risks_and_limitations": [
                    "discrimination of the primary-resistance model is modest "
                    f"(bootstrap optimism-corrected AUC {evaluation.auc_optimism_corrected:.2f}, 10-fold cross-validated "
                    f"{evaluation.auc_cv:.2f}; the apparent AUC {evaluation.auc:.2f} on the fitting data overstates it); "
                    "the study authors call the predictive value of AFP and ALT limited",
                    "the source study is retrospective and two-centre; no prospective or external validation",
                    "the survival comparison is observational: regimens were not randomised",
                    SYNTHETIC_NOTE
                    if reconstructed
                    else f"this model was {_fitted_to(training)}, not to the study's cohort: its figures describe those "
                    "data; see training_data",
                ],
            },
            "development_details_and_input_features": {
                "inclusion_exclusion": (
                    {"the_study_which_the_reconstruction_follows": study_criteria}
                    if reconstructed
                    else {
                        "training_data": f"{training.source}: selected by whoever assembled it; the selection is not "
                        "recorded in the artifact (python -m models train keeps every row that passes "
                        "its checks, models/README.md 'Retraining')",
                        "the_study_for_comparison": study_criteria,
                    }
                ),
                "demographic_variables_used_as_inputs": (
                    f"model inputs: {', '.join(dict.fromkeys(inputs))}; "
                    + (
                        f"demographic inputs: {', '.join(demographic_inputs)}"
                        if demographic_inputs
                        else "none is a demographic variable (no race, ethnicity, language, sexual orientation, gender "
                        "identity, sex, date of birth or age, social determinants or health status assessment)"
                    )
                ),
                "demographic_representativeness": {
                    "training_data": _training_demographics(training),
                    "the_study": _study_demographics(ev),
                },
                "relevance_to_deployed_setting": (
                    "the source cohort is Chinese, predominantly HBV and male; populations with other aetiologies, "
                    "sex ratios or treatment patterns may differ. Hospitals should recalibrate or retrain on local "
                    "data (python -m models train --data ... [--recalibrate]) before relying on absolute risks."
                )
                if reconstructed
                else (
                    f"this model was {_fitted_to(training)}: it is relevant to the setting those patients came "
                    "from while its population and treatment patterns stay as they were; the study's cohort "
                    "(Chinese, predominantly HBV and male) is not its training data"
                ),
            },
            "fairness_process": {
                "approach": (
                    "inputs are restricted to the published clinical markers; no demographic inputs. "
                    + (
                        "Subgroup performance by sex, age or aetiology cannot be assessed on the reconstruction (its "
                        "features are drawn independently within resistance groups), and must be assessed on local data."
                        if reconstructed
                        else "Subgroup performance by sex, age or aetiology is stated under fairness_same_source when "
                        "training recorded it."
                    )
                ),
                "bias_management": [
                    (
                        "cohort composition: Chinese centres, HBV-dominated, mostly male (see demographic_representativeness)"
                        if reconstructed
                        else "cohort composition of the training data: see demographic_representativeness"
                    ),
                    "survivorship: second-line analyses include only patients fit enough to receive second-line therapy",
                    "confidence intervals are shown with every estimate; unknown covariates are marginalised and named",
                ],
            },
            "external_validation": {
                "data_source": "none: no external validation of this model has been performed",
                "party": "none: no external testing has been performed, so there is no testing party",
                "demographic_representativeness": "not applicable: no external data have been tested",
                "process": "not performed. Recommended before clinical use: compare this model's predictions with "
                f"observed outcomes in patients outside its training data ({training.source}), for "
                "discrimination and calibration, overall and by sex, age and aetiology",
            },
            "quantitative_performance": {
                "validity_same_source": {
                    "data": f"internal validation on the training data ({training.source}; n = {training.n}): "
                    f"{evaluation.bootstrap_resamples}-resample bootstrap and 10-fold cross-validation",
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
                    "not assessable on the reconstruction (see fairness_process)"
                    if reconstructed
                    else f"not computed: training recorded no subgroup performance for this model; compute discrimination "
                    f"and calibration by sex, age and aetiology on {training.source}"
                ),
                "validity_external": "none: no external validation has been performed (see external_validation)",
                "fairness_external": "none: no external validation has been performed (see external_validation)",
                "outcome_evaluations": "none: no evaluation of this tool's use on morbidity, mortality or other "
                f"outcomes exists; the source study (prognostic, not of this tool): {citation}",
            },
            "ongoing_maintenance": {
                "validity_monitoring": monitoring_process.format(by=""),
                "validity_local_data": validity_local,
                "fairness_monitoring": monitoring_process.format(
                    by=", by sex, age (> 50 years) and aetiology (HBV, HCV)"
                ),
                "fairness_local_data": NO_MONITORING_REPORT.format(
                    what="fairness",
                    by=", once for each subgroup's rows (sex, age > 50 years, aetiology HBV/HCV): report does "
                    "not split by subgroup itself",
                ),
            },
            "update_schedule": {
                "update_process": "reviewed yearly and whenever the evidence base changes; an update is a new artifact "
                "(python -m models train [--recalibrate]) with its own version and training-data "
                "SHA-256, rolled out by setting CDS_MODEL_DIR",
                "correction_frequency": "at each yearly review and whenever monitoring shows drift: recalibrate "
                "(--recalibrate) on calibration drift; retrain or withdraw when discrimination "
                "degrades or the report flags figures",
            },
        },
        "tripod_ai": {
            "title_and_aim": "Prediction of primary sorafenib resistance and of second-line PFS/OS by regimen in HCC",
            "source_of_data": f"{md.training_data}; evidence: {citation}",
            "participants": (
                f"{training.n} patients, {training.primary_resistance} with primary resistance; second line: "
                f"{training.second_line_patients} patients"
                + (
                    f" (the study's {ev.cohort.n} patients, reconstructed)"
                    if reconstructed
                    else f" (the study, not this model's data: {ev.cohort.n} patients, {ev.cohort.n_primary} primary)"
                )
            ),
            "outcomes": {
                "primary_resistance": f"RECIST 1.1 progression within {ev.cohort.primary_resistance_window_months} "
                "months of starting sorafenib",
                "second_line_pfs": "progression or death from second-line start",
                "second_line_os": "death from any cause from second-line start",
            },
            "predictors": "see hti1_source_attributes.development_details_and_input_features",
            "sample_size": {"n": md.n, "events": md.events},
            "missing_data": "complete cases in training; at prediction, unknown tumour size, tumour number or "
            "resistance type are marginalised over training prevalence and reported as such; "
            "missing AFP/ALT cannot be scored",
            "analysis": (
                "unpenalised logistic regression (scikit-learn), CIs by the delta method from the inverse Fisher "
                "information; Cox proportional hazards (lifelines) with Breslow baseline, pointwise CIs by the delta "
                "method on log(-log S); bootstrap and 10-fold cross-validation for internal validation"
            ),
            "model_updating": "python -m models train --data FILE [--recalibrate] writes a new versioned artifact",
            "limitations": "see hti1_source_attributes.cautioned_out_of_scope_use",
            "software": md.software,
        },
        "metadata": md.model_dump(mode="json"),
    }
    return card


def _render(value, indent: int = 0) -> list[str]:
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            label = str(k).replace("_", " ")
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}- **{label}**:")
                lines += _render(v, indent + 1)
            else:
                lines.append(f"{pad}- **{label}**: {_scalar(v)}")
        return lines
    if isinstance(value, list):
        lines = []
        for v in value:
            if isinstance(v, (dict, list)):
                lines += _render(v, indent)
            else:
                lines.append(f"{pad}- {_scalar(v)}")
        return lines
    return [f"{pad}- {_scalar(value)}"]


def _scalar(v) -> str:
    if v is None:
        return "not available"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def model_card_markdown(artifact: BundleArtifact) -> str:
    card = model_card(artifact)
    training = TrainingSummary.of(artifact)
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"Version {card['model_version']}, created {card['created']}. Evidence: {card['evidence']['citation']}.",
        "",
        f"> {SYNTHETIC_NOTE}"
        if training.reconstructed
        else f"> This model was {_fitted_to(training)}, not to the study's cohort: everything below describes that "
        "model; the study's figures are labelled as the study's.",
        "",
        "## This model's training data (from its artifact)",
        "",
        *_render(card["training_data"]),
        "",
        "## The study (its figures, not this model's)",
        "",
        *_render(card["study"]),
        "",
        "## ONC HTI-1 source attributes (45 CFR 170.315(b)(11)(iv)(B))",
        "",
    ]
    attributes = card["hti1_source_attributes"]
    for key, title, items in HTI1_PREDICTIVE_SOURCE_ATTRIBUTES:
        lines += [f"### {title}", ""]
        for number, (attribute, wording) in enumerate(items, start=1):
            lines += _render({f"({_ROMAN[number]}) {wording}": attributes[key][attribute]})
        lines.append("")
    lines += ["## TRIPOD+AI items", ""]
    for section, content in card["tripod_ai"].items():
        if isinstance(content, dict):
            lines += [f"### {section.replace('_', ' ').capitalize()}", ""] + _render(content) + [""]
        else:
            lines += _render({section: content}) + [""]
    return "\n".join(lines)


_ROMAN = {1: "i", 2: "ii", 3: "iii", 4: "iv", 5: "v"}
