from __future__ import annotations

import re

import libcst as cst

from mlplint.lint.facts.core import nodes_within

from mlplint.lint.facts.data import SCALERS
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

# Names that say "held-out data" when provenance cannot tell: X_test, x_val, valid_df, holdout...
_HELD_OUT_NAME = re.compile(r"(^|_)(test|val|valid|validation|holdout|dev)(_|\d|$)", re.IGNORECASE)


def _name_of(expr: cst.BaseExpression) -> str:
    while isinstance(expr, (cst.Attribute, cst.Subscript, cst.Call)):
        expr = expr.func if isinstance(expr, cst.Call) else expr.value
    return expr.value if isinstance(expr, cst.Name) else ""


@register
class ScalerFitLeakage(Rule):
    """
    ## What it does
    Finds a scikit-learn scaler (StandardScaler, MinMaxScaler, RobustScaler, pipelines...) whose
    `fit` or `fit_transform` sees held-out data: the test or validation part of a
    `train_test_split` (or a variable named like `X_test`/`X_val` when the split cannot be
    traced), or the full data set before it is split.

    ## Why is this bad?
    The scaler's means and variances then include the test rows: information from the test set
    leaks into training, and the reported test score is optimistic. Fit the scaler on the training
    split only and use `transform` on validation and test data.

    ## Example
    ```python
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X = StandardScaler().fit_transform(X)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)
    ```

    Use instead:
    ```python
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    ```
    """

    code = "ML103"
    name = "scaler-fit-leakage"
    severity = Severity.ERROR
    judges_procedure = True
    symptoms = ("ML923",)

    VALID = [
        # X rebound to unscaled columns after another slice was scaled; the split never sees the scaler
        """
import numpy as np
from sklearn.preprocessing import StandardScaler
from sklearn.model_selection import train_test_split
from sklearn.linear_model import LinearRegression

data = np.random.rand(100, 3)
X = data[:, :1]
y = data[:, 2]
sc_x = StandardScaler()
X_std = sc_x.fit_transform(X)
print(LinearRegression().fit(X_std, y).coef_)

X = data[:, :2]          # new, unscaled feature matrix
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3)
reg = LinearRegression().fit(X_train, y_train)
print(reg.score(X_test, y_test))
""",
        """
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
X_train, X_test, y_train, y_test = train_test_split(X, y)
scaler = StandardScaler()
X_train = scaler.fit_transform(X_train)
X_test = scaler.transform(X_test)
""",
        # a scaler fitted on all the data that is never split (cross-validation elsewhere)
        "from sklearn.preprocessing import MinMaxScaler\nX = MinMaxScaler().fit_transform(X)\n",
        # fitting something that is not a scaler on test data
        "from sklearn.metrics import accuracy_score\nfrom sklearn.linear_model import LogisticRegression\nclf = LogisticRegression().fit(X_train, y_train)\nclf.predict(X_test)\n",
        # label encoder on test labels is not feature scaling
        "from sklearn.preprocessing import LabelEncoder\nenc = LabelEncoder()\ny_test = enc.fit_transform(y_test)\n",
    ]
    INVALID = [
        Invalid(
            """
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
X_train, X_test, y_train, y_test = train_test_split(X, y)
scaler = StandardScaler()
X_train = scaler.fit_transform(X_train)
X_test = scaler.fit_transform(X_test)
""",
            line=7,
            message="test",
        ),
        Invalid(
            """
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
X_scaled = StandardScaler().fit_transform(X)
X_train, X_test, y_train, y_test = train_test_split(X_scaled, y, test_size=0.25)
""",
            line=4,
            message="before",
        ),
        Invalid(
            """
from sklearn import preprocessing
from sklearn.model_selection import train_test_split
scaler = preprocessing.MinMaxScaler()
scaler.fit(df.values)
train_x, val_x = train_test_split(df.values, test_size=0.1)
train_x = scaler.transform(train_x)
""",
            line=5,
        ),
        Invalid(
            "from sklearn.preprocessing import RobustScaler\nsc = RobustScaler()\nx_val = sc.fit_transform(x_val)\n",
            line=3,
        ),
        # columns of a frame scaled in place, then split
        Invalid(
            """
import pandas as pd
from sklearn.preprocessing import MinMaxScaler
from sklearn.model_selection import train_test_split
df = pd.read_csv("prices.csv")
scaler = MinMaxScaler()
scaled = df.copy()
scaled[["open", "close"]] = scaler.fit_transform(scaled[["open", "close"]])
X = scaled.drop(columns=["close"]).values
y = scaled["close"].values
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, shuffle=False)
""",
            line=8,
            message="before train_test_split",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        splits = [c for c in facts.calls if (facts.qualname(c.func) or "").startswith("sklearn.model_selection.train_test_split")]
        for call in facts.calls:
            func = call.func
            if not (isinstance(func, cst.Attribute) and func.attr.value in ("fit", "fit_transform") and call.args):
                continue
            if not any(isinstance(c, str) and c in SCALERS for c in facts.classes_of(func.value)):
                continue
            data = call.args[0].value
            lineages = facts.data.lineages(data)
            parts = {lineage.split for lineage in lineages}
            if "test" in parts or (parts == {None} and _HELD_OUT_NAME.search(_name_of(data))):
                ctx.report(call, f"the scaler is fitted on held-out data `{facts.module.code_for_node(data)}`: its "
                                 "statistics leak the test set into training; fit on the training split and only "
                                 "`transform` validation and test data")
                continue
            if parts != {None}:
                continue
            split = self._later_split_of(facts, call, lineages, splits)
            if split is not None:
                ctx.report(call, f"the scaler is fitted on the full data before train_test_split (line "
                                 f"{facts.line_of(split)}), so test rows shape the scaling; split first, then fit "
                                 "the scaler on the training part")

    @staticmethod
    def _later_split_of(facts, fit: cst.Call, lineages, splits):
        """A later split of the data this scaler saw: data its fit_transform or a transform by the
        same scaler produced, a frame its result was written into (`df[cols] = fit_transform(...)`),
        or the very data it was fitted on (`scaler.fit(df.values)`, then `split(df.values)`). Data
        from the same source that the scaler never saw (`X = data[:, :2]` rebound after scaling
        another slice) does not count."""
        scaler, fitted = fit.func.value, fit.args[0].value
        statement = next((a for a in facts.ancestors(fit) if isinstance(a, cst.Assign)), None)
        targets = statement.targets if statement is not None else ()
        written = [t.target.value for t in targets if isinstance(t.target, (cst.Subscript, cst.Attribute))]

        def scaled_by_it(node: cst.CSTNode) -> bool:
            if node is fit:
                return True
            return isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                and node.func.attr.value == "transform" and facts.same_object(node.func.value, scaler)

        def reads_written(node: cst.CSTNode) -> bool:
            return any(facts.same_object(name, base) for base in written for name in nodes_within(node, cst.Name))

        for split in splits:
            if facts.order_of(split) < facts.order_of(fit):
                continue
            for arg in split.args:
                if facts.same_object(arg.value, fitted):
                    return split
                for lineage in facts.data.lineages(arg.value):
                    nodes = [lineage.source.node, *(node for _, node in lineage.ops)]
                    if any(scaled_by_it(node) for node in nodes) or any(reads_written(node) for node in nodes):
                        return split
        return None
