"""Run every benchmark: ``python -m benchmarks`` (or ``make bench``)."""

from benchmarks import irae_population, pk_population

if __name__ == "__main__":
    pk_population.main()
    irae_population.main()
