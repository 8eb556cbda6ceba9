"""The coefficients of `erfc` in gelu.rs: a least-squares Chebyshev fit, turned into powers of t.

For z >= 0, erfc(z) = t * exp(-z^2 + R(t)) with t = 1 / (1 + z/2) in (0, 1] (the form of
Numerical Recipes' erfcc); R is smooth on [0, 1] (R(0) = -ln(2 sqrt(pi)) is the limit of the
asymptotic series), so a polynomial of degree 14 in t gives erfc to 3e-10 relative for every
z >= 0: far below float32's 6e-8. Reference values from mpmath at 40 digits.

    pip install numpy mpmath
    python3 erfc_fit.py
"""

import mpmath as mp
import numpy as np

mp.mp.dps = 40
DEGREE = 14


def r(t):
    if t == 0:
        return float(-mp.log(2 * mp.sqrt(mp.pi)))
    z = 2 * (1 / mp.mpf(t) - 1)
    return float(mp.log(mp.erfc(z) * (1 + z / 2)) + z * z)


n = 400
nodes = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
fit = np.polynomial.chebyshev.Chebyshev.fit(nodes, [r(t) for t in nodes], DEGREE, domain=[0, 1])
coef = fit.convert(kind=np.polynomial.Polynomial).coef

worst = 0.0
for z in np.linspace(0, 12, 6001):
    t = 1 / (1 + z / 2)
    got = t * np.exp(-z * z + np.polyval(coef[::-1], t))
    want = float(mp.erfc(z))
    worst = max(worst, abs(got - want) / want)
print(f"// largest relative error of erfc on [0, 12]: {worst:.2e}")
print(f"const R: [f64; {DEGREE + 1}] = [")
for c in coef:
    print(f"    {float(c)!r},")
print("];")
