"""Statistics of Monte Carlo series, finite-size scaling, exact enumeration."""
