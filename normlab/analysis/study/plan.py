"""Study files, profiles and plans: which runs (variant × seed) a study consists of.

A study (studies/*.yaml) names variants — sets of params overrides, dotted keys as
`dvc exp run -S` takes them — and the seeds to repeat them with. A plan resolves every run's
params from the *committed* params.yaml (HEAD's, not the workspace's, which `dvc exp run -S`
leaves modified) plus the study's overrides, and gives each its identity key (see
`records.identity`) and the path of its record. A run is done when a record with its identity
key exists anywhere under results/, so a run shared by two studies is trained once.

Records of the default study file go to results/runs/; those of a profile or another study
file to results/<profile or file name>/runs/, so a quick check never touches the committed
answer.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from normlab import config, yamlfile
from normlab.analysis.study import overrides as overrides_mod
from normlab.analysis.study.records import identity
from normlab.errors import InputError, NormlabError
from normlab.train import prepare

DEFAULT_FILE = Path("studies/default.yaml")
RESULTS = Path("results")


Seed = Annotated[StrictInt, Field(ge=0, le=config.MAX_SEED)]


class _StudyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _distinct(seeds: list[int] | None) -> list[int] | None:
    """Two runs of one seed would be one run under two names."""
    if seeds is not None and len(set(seeds)) < len(seeds):
        raise ValueError(f"seed {next(s for s in seeds if seeds.count(s) > 1)} is given twice")
    return seeds


class Study(_StudyModel):
    """One study as written in the YAML file; `set` and variant values are params overrides."""

    description: str = ""
    epochs: StrictInt = Field(ge=1)
    seeds: list[Seed] = Field(min_length=1)
    set: dict[str, Any] = {}
    variants: dict[str, dict[str, Any]] = Field(min_length=1)
    # variant → its own seeds: fewer, e.g. `in`, which cannot learn on the `cnn` (README) and
    # needs one seed to show it; or more, the fresh seeds a registered claim is judged on
    # (studies/claims-v2.yaml). Under a profile's seeds, only those of them the profile has.
    variant_seeds: dict[str, list[Seed]] = {}
    # Why this study is left out, e.g. "left for a GPU: …": `study run` and `plan` skip it
    # unless --study names it, and the report says "not run" with this reason.
    not_run: str = ""

    _seeds = field_validator("seeds")(_distinct)

    def seeds_of(self, variant: str) -> list[int]:
        return self.variant_seeds.get(variant, self.seeds)


class Profile(_StudyModel):
    """A way to shrink any study: fewer variants, other seeds, fewer epochs, extra overrides."""

    variants: StrictInt | None = Field(default=None, ge=1)
    seeds: list[Seed] | None = Field(default=None, min_length=1)
    epochs: StrictInt | None = Field(default=None, ge=1)
    set: dict[str, Any] = {}

    _seeds = field_validator("seeds")(_distinct)


class StudyFile(_StudyModel):
    profiles: dict[str, Profile] = {}
    studies: dict[str, Study] = Field(min_length=1)


@dataclass(frozen=True)
class PlannedRun:
    """One planned run: a variant of a study with one seed, its params and its record's path."""

    study: str
    variant: str
    seed: int
    overrides: dict[str, Any]  # dotted params key → value, applied in order
    params: dict[str, Any]  # resolved (config.Params.model_dump())
    key: str  # identity key
    path: Path  # where its record goes

    @property
    def label(self) -> str:
        return f"{self.study}/{self.variant}/s{self.seed}"


@dataclass(frozen=True)
class Plan:
    """The runs of the chosen studies, and where their records and report go."""

    runs: list[PlannedRun]
    studies: dict[str, Study]
    out: Path  # results folder of this plan: its records are under out/runs


def _first_error(path: Path, exc: ValidationError) -> NormlabError:
    err = yamlfile.first_error(exc)
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return NormlabError(f"{path}: unknown key '{loc}' (a typo?)")
    return NormlabError(f"{path}: {loc}: {err['msg']}")


def _check_name(path: Path, label: str, what: str = "study or variant") -> None:
    """Study, variant and profile names become folders of results/: no spaces, slashes or dots."""
    if not label or not all(c.isascii() and (c.isalnum() or c in "+-_") for c in label):
        raise NormlabError(
            f"{path}: {what} name {label!r}: use letters, digits, '+', "
            "'-', '_' (it becomes a folder of results/)"
        )


def _no_seed_key(path: Path, where: str, overrides: dict[str, Any]) -> None:
    """A seed set as an override would give every run of a variant that seed under the names
    s0, s1, s2: one run recorded three times, each record naming a seed it did not use."""
    if "seed" in overrides:
        raise NormlabError(
            f"{path}: {where}: key 'seed' cannot be set here: {overrides_mod.SEED_KEY_HELP}"
        )


def load_file(path: Path = DEFAULT_FILE) -> StudyFile:
    """Read and validate a study file; any problem is one line naming the file and key."""
    raw = yamlfile.mapping(yamlfile.read(path, "study file"), path, "key 'studies'")
    try:
        parsed = StudyFile.model_validate(raw)
    except ValidationError as exc:
        raise _first_error(path, exc) from None
    for name in parsed.profiles:
        _check_name(path, name, "profile")
    for name, profile in parsed.profiles.items():
        _no_seed_key(path, f"profiles.{name}.set", profile.set)
    for name, study in parsed.studies.items():
        for label in (name, *study.variants):
            _check_name(path, label)
        _no_seed_key(path, f"studies.{name}.set", study.set)
        for variant, overrides in study.variants.items():
            _no_seed_key(path, f"studies.{name}.variants.{variant}", overrides)
        for variant, seeds in study.variant_seeds.items():
            if variant not in study.variants or not seeds:
                raise NormlabError(
                    f"{path}: studies.{name}.variant_seeds.{variant}: "
                    + ("not a variant of the study" if seeds else "give at least one seed")
                    + f" (variants: {', '.join(study.variants)})"
                )
    return parsed


def results_dir(file: Path, profile: str | None) -> Path:
    """results/ for the default studies; results/<profile or file name>/ for anything else."""
    default = Path(file).resolve() == DEFAULT_FILE.resolve()
    if default and profile is None:
        return RESULTS
    name = profile if default else Path(file).stem + (f"-{profile}" if profile else "")
    return RESULTS / name


def resolve(base: overrides_mod.Base, study: str, variant: str, overrides: dict[str, Any]) -> dict:
    """The resolved params of one run (as the validate stage writes model/params.json), with
    the checks of the validate stage but the device's (a plan may be for another machine), so a
    bad variant stops the plan before any run trains."""
    try:
        params = config.parse(overrides_mod.apply(base.params, overrides), base.recipes)
        prepare.check_fits(params)
    except InputError as err:  # its value may come from params.yaml, the study file or --set
        raise NormlabError(f"study {study}, variant {variant}: {err.detail}") from None
    except NormlabError as err:
        raise NormlabError(f"study {study}, variant {variant}: {err}") from None
    return params.model_dump()


def shrink(study: Study, profile: Profile, epochs: int | None, sets: dict[str, Any]) -> Study:
    """The study as this plan runs it: profile and command line applied."""
    kept = dict(list(study.variants.items())[: profile.variants])
    own = {v: s for v, s in study.variant_seeds.items() if v in kept}
    if profile.seeds is not None:  # a variant's own seeds shrink with the profile's: `in: [0]`
        # stays [0], and fresh seeds added for a confirmation (bn: [0, …, 5]) drop out of tiny
        own = {v: [x for x in s if x in profile.seeds] or s[:1] for v, s in own.items()}
    return study.model_copy(
        update={
            "variants": kept,
            "variant_seeds": own,
            "seeds": study.seeds if profile.seeds is None else profile.seeds,
            "epochs": next(e for e in (epochs, profile.epochs, study.epochs) if e is not None),
            "set": {**study.set, **profile.set, **sets},
        }
    )


def plan(
    spec: StudyFile,
    base: overrides_mod.Base,
    names: list[str] | None = None,
    profile: str | None = None,
    epochs: int | None = None,
    sets: dict[str, Any] | None = None,
    out: Path = RESULTS,
) -> Plan:
    """Every run of the named studies (all by default), after the profile and the overrides."""
    names = names or list(spec.studies)
    unknown = [n for n in names if n not in spec.studies]
    if unknown:
        defined = ", ".join(spec.studies)
        raise NormlabError(f"study {unknown[0]!r}: not defined (defined: {defined})")
    if profile is not None and profile not in spec.profiles:
        defined = ", ".join(spec.profiles) or "none"
        raise NormlabError(f"profile {profile!r}: not defined (defined: {defined})")
    sets = sets or {}
    runs, studies = [], {}
    for name in names:
        study = shrink(
            spec.studies[name], spec.profiles[profile] if profile else Profile(), epochs, sets
        )
        studies[name] = study
        for variant, params in study.variants.items():
            for seed in study.seeds_of(variant):
                # the command line has the last word, even over a variant
                overrides = {
                    **study.set,
                    "train.epochs": study.epochs,
                    **params,
                    "seed": seed,
                    **sets,
                }
                resolved = resolve(base, name, variant, overrides)
                path = out / "runs" / name / variant / f"s{seed}.json"
                runs.append(
                    PlannedRun(name, variant, seed, overrides, resolved, identity(resolved), path)
                )
    return Plan(runs, studies, out)
