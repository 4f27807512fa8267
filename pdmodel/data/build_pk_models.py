"""Write pdmodel/data/pk_models.csv: the PK parameters pdmodel uses, in canonical units.

Run by hand (``python pdmodel/data/build_pk_models.py``); the CSV is committed. Each row keeps
the published value and unit next to the converted one, its source, and the row of
``shared/data/pk_parameters.csv`` it comes from (blank when it comes from the model file the
source was transcribed into). Canonical units: L, L/day, day, mg/day, mg/L.
"""

import csv
import math
from pathlib import Path

NLMIXR = "nlmixr2lib inst/modeldb/specificDrugs"
BAJAJ = ("Bajaj G et al. CPT Pharmacometrics Syst Pharmacol 2017;6:58-66 Table 1 "
         f"(via {NLMIXR}/Bajaj_2017_nivolumab.R)")
AHAMADI = ("Ahamadi M et al. CPT Pharmacometrics Syst Pharmacol 2017;6:49-57 Table 3 "
           f"(via {NLMIXR}/Ahamadi_2017_pembrolizumab.R)")
ELASSAISS = ("Elassaiss-Schaap J et al. CPT Pharmacometrics Syst Pharmacol 2017;6:21-28 Table 2 "
             f"(via {NLMIXR}/Elassaiss-Schaap_2017_pembrolizumab.R)")
SANGHAVI = ("Sanghavi K et al. CPT Pharmacometrics Syst Pharmacol 2020;9:29-39 Table 2 "
            f"(via {NLMIXR}/Sanghavi_2020_ipilimumab.R)")
YANG = ("Yang F et al. J Pharmacokinet Pharmacodyn 2021;48:479-494 Table 3 "
        f"(via {NLMIXR}/Yang_2021_cemiplimab.R)")
HWANG = ("Hwang M et al. Br J Clin Pharmacol 2023;89:1601-1616 Table 3 "
         f"(via {NLMIXR}/Hwang_2022_tremelimumab.R)")
MASTERS = ("Masters JC et al. CPT Pharmacometrics Syst Pharmacol 2022;11:458-468 Table 1 "
           f"(via {NLMIXR}/Masters_2022_avelumab.R)")
STROH = "Centanni M et al. Clin Pharmacokinet 2019;58:835 Table 2 (citing Stroh 2017; PMC6584248)"
BAVEREL = ("Centanni M et al. Clin Pharmacokinet 2019;58:835 Table 2 (citing Baverel 2018; "
           "PMC6584248)")

MLH = 24 / 1000  # mL/h -> L/day
LH = 24.0  # L/h -> L/day
H = 1 / 24  # h -> day


def cv2omega(cv_percent):
    return round(math.log(1 + (cv_percent / 100) ** 2), 6)


# (agent, model, parameter, value, unit, applies_to, condition, published, source, row, note)
R = []


def add(agent, model, par, value, unit, src, row="", published="", applies="", cond="", note=""):
    R.append(dict(agent=agent, model=model, parameter=par, value=f"{float(value):.10g}", unit=unit,
                  applies_to=applies, condition=cond, published=published, source=src,
                  shared_row_id=row, note=note))


# nivolumab - Bajaj 2017 (reference: white female, 80 kg, eGFR 90, ECOG 0)
m = ("nivolumab", "bajaj2017")
add(*m, "CL", 9.4 * MLH, "L/day", BAJAJ, "pkp-0001", "9.4 mL/h")
add(*m, "VC", 3.63, "L", BAJAJ, "pkp-0002", "3.63 L")
add(*m, "Q", 32.1 * MLH, "L/day", BAJAJ, "pkp-0003", "32.1 mL/h")
add(*m, "VP", 2.78, "L", BAJAJ, "pkp-0004", "2.78 L")
add(*m, "TV_EMAX", -0.295, "log-scale", BAJAJ, "pkp-0005", "-0.295")
add(*m, "TV_T50", 1410 * H, "day", BAJAJ, "pkp-0006", "1410 h")
add(*m, "TV_HILL", 3.15, "-", BAJAJ, "pkp-0007", "3.15")
add(*m, "WT_REF", 80, "kg", BAJAJ, "pkp-0008", "80 kg")
add(*m, "WT_EXP", 0.566, "-", BAJAJ, "pkp-0009", "0.566", applies="CL")
add(*m, "WT_EXP", 0.597, "-", BAJAJ, "pkp-0010", "0.597", applies="VC")
add(*m, "OMEGA2", 0.123, "log-variance", BAJAJ, "pkp-0016", "0.123", applies="CL")
add(*m, "OMEGA2", 0.123, "log-variance", BAJAJ, "pkp-0017", "0.123", applies="VC")
add(*m, "COV", 0.0432, "log-covariance", BAJAJ, "", "0.0432", applies="CL,VC")
add(*m, "OMEGA2", 0.258, "log-variance", BAJAJ, "pkp-0018", "0.258", applies="VP")
add(*m, "OMEGA2", 0.0719, "variance (additive)", BAJAJ, "pkp-0019", "0.0719", applies="TV:add")

# pembrolizumab - Ahamadi 2017 (ref 76.8 kg, ALB 39.6 g/L, male, melanoma, ECOG 0, IPI-naive)
m = ("pembrolizumab", "ahamadi2017")
add(*m, "CL", 0.22, "L/day", AHAMADI, "pkp-0022", "0.22 L/day",
    note="Table value; the footnote prints 0.202 (shared/data README)")
add(*m, "VC", 3.48, "L", AHAMADI, "pkp-0023", "3.48 L")
add(*m, "Q", 0.795, "L/day", AHAMADI, "pkp-0024", "0.795 L/day")
add(*m, "VP", 4.06, "L", AHAMADI, "pkp-0025", "4.06 L")
add(*m, "WT_REF", 76.8, "kg", AHAMADI, "pkp-0028", "76.8 kg")
add(*m, "WT_EXP", 0.595, "-", AHAMADI, "pkp-0026", "0.595", applies="CL,Q")
add(*m, "WT_EXP", 0.489, "-", AHAMADI, "pkp-0027", "0.489", applies="VC,VP")
add(*m, "OMEGA2", 0.134, "log-variance", AHAMADI, "pkp-0032", "0.134", applies="CL,Q")
add(*m, "OMEGA2", 0.0417, "log-variance", AHAMADI, "pkp-0033", "0.0417", applies="VC,VP")

# pembrolizumab - Elassaiss-Schaap 2017 (KEYNOTE-001, 0.005-10 mg/kg; parallel linear + MM)
m = ("pembrolizumab", "elassaiss-schaap2017")
add(*m, "CL", 0.168, "L/day", ELASSAISS, "pkp-0126", "0.168 L/day")
add(*m, "VC", 2.88, "L", ELASSAISS, "pkp-0127", "2.88 L")
add(*m, "Q", 0.384, "L/day", ELASSAISS, "pkp-0128", "0.384 L/day")
add(*m, "VP", 2.85, "L", ELASSAISS, "pkp-0129", "2.85 L")
add(*m, "VMAX", 0.114, "mg/day", ELASSAISS, "pkp-0130", "0.114 mg/day")
add(*m, "KM", 0.0784, "mg/L", ELASSAISS, "pkp-0131", "0.0784 ug/mL")
add(*m, "WT_REF", 80, "kg", ELASSAISS, "", "",
    note="model has no weight covariate; 80 kg is pdmodel's nominal reference (assumed)")
add(*m, "OMEGA2", 0.05024, "log-variance", ELASSAISS, "", "22.7% CV", applies="VMAX")

# ipilimumab - Sanghavi 2020 (ref 80 kg, LDH 217, melanoma, monotherapy, 2L+)
m = ("ipilimumab", "sanghavi2020")
add(*m, "CL", 14.1 * MLH, "L/day", SANGHAVI, "pkp-0044", "14.1 mL/h")
add(*m, "VC", 3.95, "L", SANGHAVI, "pkp-0045", "3.95 L")
add(*m, "Q", 27.9 * MLH, "L/day", SANGHAVI, "pkp-0046", "27.9 mL/h")
add(*m, "VP", 3.18, "L", SANGHAVI, "pkp-0047", "3.18 L")
add(*m, "TV_EMAX", -0.0644, "log-scale", SANGHAVI, "pkp-0048", "-0.0644")
add(*m, "TV_EMAX", -0.0644 - 0.202, "log-scale", SANGHAVI, "pkp-0049", "-0.0644 + (-0.202)",
    cond="with:nivolumab", note="monotherapy Emax plus the combination shift (derived sum)")
add(*m, "CL_LOGFACTOR", 0.0950, "log-scale", SANGHAVI, "pkp-0054", "0.0950",
    cond="with:nivolumab",
    note="nivolumab 1 mg/kg Q3W effect; the 3 mg/kg Q2W effect (0.191) is not applied")
add(*m, "TV_T50", 2540 * H, "day", SANGHAVI, "pkp-0050", "2540 h")
add(*m, "TV_HILL", 7.43, "-", SANGHAVI, "pkp-0051", "7.43")
add(*m, "WT_REF", 80, "kg", SANGHAVI, "pkp-0044", "80 kg")
add(*m, "WT_EXP", 0.694, "-", SANGHAVI, "pkp-0052", "0.694", applies="CL,Q")
add(*m, "WT_EXP", 0.600, "-", SANGHAVI, "pkp-0053", "0.600", applies="VC,VP")
add(*m, "OMEGA2", 0.112, "log-variance", SANGHAVI, "", "0.112", applies="CL")
add(*m, "OMEGA2", 0.0884, "log-variance", SANGHAVI, "", "0.0884", applies="VC")
add(*m, "COV", 0.0404, "log-covariance", SANGHAVI, "", "0.0404", applies="CL,VC")
add(*m, "OMEGA2", 0.0158, "variance (additive)", SANGHAVI, "", "0.0158", applies="TV:add")

# cemiplimab - Yang 2021 (ref 76.2 kg, ALB 38 g/L, IgG 9.65 g/L, ALT 20 IU/L, BMI 26.5)
m = ("cemiplimab", "yang2021")
add(*m, "CL", 0.290, "L/day", YANG, "pkp-0055", "0.290 L/day")
add(*m, "VC", 3.32, "L", YANG, "pkp-0056", "3.32 L")
add(*m, "Q", 0.638, "L/day", YANG, "pkp-0057", "0.638 L/day")
add(*m, "VP", 1.65, "L", YANG, "pkp-0058", "1.65 L")
add(*m, "TV_EMAX", -0.410, "log-scale", YANG, "pkp-0059", "-0.410")
add(*m, "TV_T50", 28.9, "day", YANG, "pkp-0060", "28.9 days")
add(*m, "TV_HILL", 2.79, "-", YANG, "pkp-0061", "2.79")
add(*m, "WT_REF", 76.2, "kg", YANG, "pkp-0055", "76.2 kg")
add(*m, "WT_EXP", 0.477, "-", YANG, "pkp-0062", "0.477", applies="CL,Q")
add(*m, "WT_EXP", 0.970, "-", YANG, "pkp-0063", "0.970", applies="VC,VP")
add(*m, "OMEGA2", 0.0870, "log-variance", YANG, "", "0.0870", applies="CL,Q")
add(*m, "OMEGA2", 0.0432, "log-variance", YANG, "", "0.0432", applies="VC,VP")
add(*m, "COV", 0.0422, "log-covariance", YANG, "", "0.0422", applies="CL,VC")
add(*m, "OMEGA2", 0.228, "log-variance", YANG, "", "0.228", applies="TV:exp")
add(*m, "OMEGA2", 0.610, "log-variance", YANG, "", "0.610", applies="TV_T50")

# tremelimumab - Hwang 2023 (ref 71 kg, ALB 39 g/L); regimen-dependent time-varying CL
m = ("tremelimumab", "hwang2023")
add(*m, "CL", 0.276, "L/day", HWANG, "pkp-0079", "0.276 L/day")
add(*m, "VC", 3.64, "L", HWANG, "pkp-0080", "3.64 L")
add(*m, "Q", 0.357, "L/day", HWANG, "pkp-0081", "0.357 L/day")
add(*m, "VP", 2.40, "L", HWANG, "pkp-0082", "2.40 L")
add(*m, "TV_EMAX", 0.151, "log-scale", HWANG, "pkp-0083", "0.151",
    note="monotherapy: clearance increases over time")
add(*m, "TV_EMAX", -0.187, "log-scale", HWANG, "pkp-0084", "-0.187", cond="with:durvalumab")
add(*m, "TV_T50", 95.1, "day", HWANG, "pkp-0085", "95.1 days")
add(*m, "TV_HILL", 14.5, "-", HWANG, "pkp-0086", "14.5")
add(*m, "TV_HILL", 3.20, "-", HWANG, "pkp-0087", "3.20", cond="with:durvalumab")
add(*m, "WT_REF", 71, "kg", HWANG, "pkp-0088", "71 kg")
add(*m, "WT_EXP", 0.638, "-", HWANG, "pkp-0088", "0.638", applies="CL")
add(*m, "WT_EXP", 0.606, "-", HWANG, "pkp-0089", "0.606", applies="VC")
add(*m, "OMEGA2", 0.113, "log-variance", HWANG, "", "0.113", applies="CL")
add(*m, "OMEGA2", 0.0536, "log-variance", HWANG, "", "0.0536", applies="VC")
add(*m, "OMEGA2", 0.151, "variance (additive)", HWANG, "", "0.151", applies="TV:add")

# avelumab - Masters 2022 (ref 80 kg); fractional time-dependent clearance
m = ("avelumab", "masters2022")
add(*m, "CL", 0.0269 * LH, "L/day", MASTERS, "pkp-0097", "0.0269 L/h")
add(*m, "VC", 3.196, "L", MASTERS, "pkp-0098", "3.196 L")
add(*m, "VP", 0.7278, "L", MASTERS, "pkp-0099", "0.7278 L")
add(*m, "Q", 0.03352 * LH, "L/day", MASTERS, "pkp-0100", "0.03352 L/h",
    note="printed 0.3352 L/h; 0.03352 as corrected by the nlmixr2lib curators")
add(*m, "TV_IMAX", -0.08533, "fraction", MASTERS, "pkp-0101", "-0.08533")
add(*m, "TV_T50", 99.24, "day", MASTERS, "pkp-0102", "99.24 days")
add(*m, "TV_HILL", 2.086, "-", MASTERS, "pkp-0103", "2.086")
add(*m, "WT_REF", 80, "kg", MASTERS, "pkp-0097", "80 kg")
add(*m, "WT_EXP", 0.4714, "-", MASTERS, "pkp-0104", "0.4714", applies="CL")
add(*m, "WT_EXP", 0.4694, "-", MASTERS, "pkp-0105", "0.4694", applies="VC")
add(*m, "WT_EXP", 0.5826, "-", MASTERS, "", "0.5826", applies="VP")
add(*m, "WT_EXP", 1.0, "-", MASTERS, "", "1 (fixed)", applies="Q")
add(*m, "OMEGA2", 0.09339, "log-variance", MASTERS, "", "0.09339", applies="CL")
add(*m, "OMEGA2", 0.03776, "log-variance", MASTERS, "", "0.03776", applies="VC")
add(*m, "OMEGA2", 1.204, "log-variance", MASTERS, "", "1.204", applies="VP")
add(*m, "COV", 0.03048, "log-covariance", MASTERS, "", "0.03048", applies="CL,VC")
add(*m, "COV", 0.08418, "log-covariance", MASTERS, "", "0.08418", applies="CL,VP")
add(*m, "COV", 0.01799, "log-covariance", MASTERS, "", "0.01799", applies="VC,VP")
add(*m, "OMEGA2", 0.1052, "log-variance", MASTERS, "", "0.1052", applies="TV:exp")

# atezolizumab - Stroh 2017 via Centanni 2019 (ref 77 kg, ALB 40 g/L)
m = ("atezolizumab", "stroh2017")
add(*m, "CL", 0.20, "L/day", STROH, "pkp-0162", "0.20 L/day")
add(*m, "VC", 3.28, "L", STROH, "pkp-0163", "3.28 L")
add(*m, "VP", 3.63, "L", STROH, "pkp-0164", "3.63 L")
add(*m, "Q", 0.546, "L/day", STROH, "pkp-0165", "0.546 L/day")
add(*m, "WT_REF", 77, "kg", STROH, "pkp-0162", "77 kg")
add(*m, "WT_EXP", 0.808, "-", STROH, "pkp-0167", "0.808", applies="CL")
add(*m, "WT_EXP", 0.559, "-", STROH, "pkp-0168", "0.559", applies="VC")
for par, cv in (("CL", 29), ("VC", 18), ("VP", 34)):
    add(*m, "OMEGA2", cv2omega(cv), "log-variance", STROH, "pkp-0170", f"{cv}% CV",
        applies=par, note="omega^2 = ln(1 + CV^2) (derived)")

# durvalumab - Baverel 2018 via Centanni 2019 (ref 69 kg); linear + Michaelis-Menten
m = ("durvalumab", "baverel2018")
add(*m, "CL", 0.232, "L/day", BAVEREL, "pkp-0176", "0.232 L/day")
add(*m, "VC", 3.51, "L", BAVEREL, "pkp-0177", "3.51 L")
add(*m, "VP", 3.45, "L", BAVEREL, "pkp-0178", "3.45 L")
add(*m, "Q", 0.476, "L/day", BAVEREL, "pkp-0179", "0.476 L/day")
add(*m, "VMAX", 0.824, "mg/day", BAVEREL, "pkp-0180", "0.824 mg/day")
add(*m, "KM", 0.344, "mg/L", BAVEREL, "pkp-0181", "0.344 mg/L")
add(*m, "WT_REF", 69, "kg", BAVEREL, "pkp-0176", "69 kg")
add(*m, "WT_EXP", 0.389, "-", BAVEREL, "pkp-0183", "0.389", applies="CL")
add(*m, "WT_EXP", 0.406, "-", BAVEREL, "pkp-0184", "0.406", applies="VC")
for par, cv in (("CL", 27.2), ("VC", 22.1)):
    add(*m, "OMEGA2", cv2omega(cv), "log-variance", BAVEREL, "pkp-0185", f"{cv}% CV",
        applies=par, note="omega^2 = ln(1 + CV^2) (derived)")

out = Path(__file__).resolve().parent / "pk_models.csv"
with out.open("w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(R[0]))
    w.writeheader()
    w.writerows(R)
print(f"wrote {len(R)} rows to {out}")
