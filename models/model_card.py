"""Model card generated from the artifact: TRIPOD+AI items and the source attributes that ONC
HTI-1 requires for predictive decision support interventions (45 CFR 170.315(b)(11)(iv)(B)).

Every number comes from the artifact metadata or the bundled evidence file; nothing is typed in.
"""

from __future__ import annotations

from models.artifacts import BundleArtifact
from models.evidence import load_evidence

SYNTHETIC_NOTE = (
    "The default models are fitted on a synthetic cohort reconstructed from the study's published "
    "aggregates (Table 1 counts, logistic ORs, Kaplan-Meier medians and landmarks, Cox HRs); it is not "
    "patient data. Their performance figures describe that reconstruction, not a real population."
)


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.1f}%)"


def model_card(artifact: BundleArtifact) -> dict:
    ev = load_evidence()
    md = artifact.metadata
    res = artifact.resistance
    t1 = ev.table1_counts
    n = ev.cohort.n
    synthetic = md.seed is not None
    evaluation = res.evaluation
    demographics = {
        "country": "China (two centres: Guizhou; Beijing)",
        "male": _pct(t1["male"][0] + t1["male"][1], n),
        "age_over_50": _pct(t1["age_over_50"][0] + t1["age_over_50"][1], n),
        "hbv": _pct(t1["hbv"][0] + t1["hbv"][1], n),
        "bclc_c": _pct(t1["bclc_c"][0] + t1["bclc_c"][1], n),
        "child_pugh_b": _pct(t1["child_pugh_b"][0] + t1["child_pugh_b"][1], n),
        "race_ethnicity": "not reported by the study (Chinese centres)",
    }
    citation = f"{ev.source.citation} DOI {ev.source.doi} ({ev.source.url})"
    card = {
        "name": "HCC sorafenib resistance: primary-resistance risk and second-line survival estimates",
        "model_version": md.model_version,
        "created": md.created,
        "evidence": {"citation": citation, "doi": ev.source.doi},
        "hti1_source_attributes": {
            "details_and_output": {
                "developer": "hcc-sorafenib-cds project (models package); contact: the deploying organisation's "
                             "CDS governance team",
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
                    "retrospective two-centre study; no prospective or external validation",
                    "the survival comparison is observational: regimens were not randomised",
                    SYNTHETIC_NOTE if synthetic else "fitted on the deploying hospital's own data: see development data",
                ],
            },
            "development_details_and_input_features": {
                "inclusion_exclusion": [
                    "HCC by pathology or two imaging techniques; Child-Pugh A or B; >= 1 RECIST 1.1 measurable lesion",
                    "excluded: other primary tumour, non-adherence, surgery, aetiology other than HBV/HCV, "
                    "unacceptable toxicity, incomplete follow-up",
                    f"enrolment {ev.cohort.enrolment[0]} to {ev.cohort.enrolment[1]}, data cut-off {ev.cohort.data_cutoff}",
                ],
                "input_features": {
                    "primary_resistance_risk": [f"{f} (AFP > {ev.thresholds.afp_ng_per_ml:g} ng/mL)" if f == "afp_over_400"
                                                else f"{f} (ALT > {ev.thresholds.alt_u_per_l:g} U/L)" for f in res.features],
                    "second_line_pfs": artifact.pfs.covariates,
                    "second_line_os": artifact.os.covariates,
                },
                "demographic_variables_used_as_inputs": "none (no race, ethnicity, sex, age, language or social "
                                                        "determinants are model inputs)",
                "demographic_representativeness": demographics,
                "relevance_to_deployed_setting": (
                    "the source cohort is Chinese, predominantly HBV and male; populations with other aetiologies, "
                    "sex ratios or treatment patterns may differ. Hospitals should recalibrate or retrain on local "
                    "data (python -m models train --data ... [--recalibrate]) before relying on absolute risks."
                ),
                "training_data": md.training_data,
                "training_data_sha256": md.training_data_sha256,
                "n": md.n,
                "events": md.events,
            },
            "fairness_process": {
                "approach": (
                    "inputs are restricted to the published clinical markers; no demographic inputs. Subgroup "
                    "performance by sex, age or aetiology cannot be assessed on the reconstruction (its features are "
                    "drawn independently within resistance groups), and must be assessed on local data."
                ),
                "bias_management": [
                    "cohort composition: Chinese centres, HBV-dominated, mostly male (see demographic_representativeness)",
                    "survivorship: second-line analyses include only patients fit enough to receive second-line therapy",
                    "confidence intervals are shown with every estimate; unknown covariates are marginalised and named",
                ],
            },
            "external_validation": {
                "data_source": "none: no external validation has been performed",
                "party": None,
                "demographic_representativeness": None,
                "process": "recommended before clinical use: run `python -m models train --data <local cohort>` and "
                           "`python -m models report`, compare discrimination and calibration on local data",
            },
            "quantitative_performance": {
                "validity_same_source": {
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
                "fairness_same_source": "not assessable on the reconstruction (see fairness_process)",
                "validity_external": None,
                "fairness_external": None,
                "outcome_evaluations": f"none of this tool; source study: {citation}",
            },
            "ongoing_maintenance": {
                "update_schedule": "review yearly and whenever the evidence base changes; each artifact is versioned "
                                   "and carries its training-data SHA-256",
                "monitoring": "compare predicted vs observed primary-resistance rates and second-line survival on "
                              "local data at least yearly (python -m models report on a local cohort)",
                "corrective_action": "recalibrate (--recalibrate) on calibration drift; retrain or withdraw when "
                                     "discrimination degrades or the report flags figures",
            },
        },
        "tripod_ai": {
            "title_and_aim": "Prediction of primary sorafenib resistance and of second-line PFS/OS by regimen in HCC",
            "source_of_data": f"{citation}; {md.training_data}",
            "participants": f"{ev.cohort.n} patients ({ev.cohort.n_primary} primary, {ev.cohort.n_secondary} secondary "
                            f"resistance); second line: {md.events.get('second_line_patients')} patients",
            "outcomes": {
                "primary_resistance": f"RECIST 1.1 progression within {ev.cohort.primary_resistance_window_months} "
                                      "months of starting sorafenib",
                "second_line_pfs": "progression or death from second-line start",
                "second_line_os": "death from any cause from second-line start",
            },
            "predictors": "see hti1_source_attributes.development_details_and_input_features.input_features",
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
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"Version {card['model_version']}, created {card['created']}. Evidence: {card['evidence']['citation']}.",
        "",
    ]
    if artifact.metadata.seed is not None:
        lines += [f"> {SYNTHETIC_NOTE}", ""]
    titles = {
        "hti1_source_attributes": "ONC HTI-1 source attributes (45 CFR 170.315(b)(11))",
        "tripod_ai": "TRIPOD+AI items",
    }
    for key, title in titles.items():
        lines += [f"## {title}", ""]
        for section, content in card[key].items():
            if isinstance(content, dict):
                lines += [f"### {section.replace('_', ' ').capitalize()}", ""] + _render(content) + [""]
            else:
                lines += _render({section: content}) + [""]
    return "\n".join(lines)
