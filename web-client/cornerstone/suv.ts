// SUV scaling factors of a PT series, as Cornerstone's scalingModule gives them: computed with
// @cornerstonejs/calculate-suv (QIBA's pseudo-code, what OHIF uses) over the whole series, since
// the scan time can be the series' earliest acquisition. The library is loaded the first time a
// PT series is opened.
import type { ImageAttributes, PetAttributes } from '../../shared/protocol.js';

/** Multiply a modality-LUT value by `suvbw` for SUV body weight (lbm, bsa: lean body mass, body surface area). */
export interface SuvFactors { suvbw: number; suvlbm?: number; suvbsa?: number }

type InstanceMetadata = Parameters<typeof import('@cornerstonejs/calculate-suv').calculateSUVScalingFactors>[0][number];

/** calculate-suv's input: what the file gives, nothing for what it does not. */
function suvInput(pet: PetAttributes): InstanceMetadata {
  const given = <T>(value: T): T | undefined => (value === 0 || value === '' ? undefined : value);
  const philips = pet.philipsSuvScaleFactor || pet.philipsActivityConcentrationScaleFactor
    ? { SUVScaleFactor: given(pet.philipsSuvScaleFactor), ActivityConcentrationScaleFactor: given(pet.philipsActivityConcentrationScaleFactor) }
    : undefined;
  return {
    CorrectedImage: pet.correctedImage,
    Units: pet.units,
    RadionuclideHalfLife: pet.radionuclideHalfLife,
    RadionuclideTotalDose: pet.radionuclideTotalDose,
    DecayCorrection: pet.decayCorrection,
    PatientWeight: given(pet.patientWeight) as number,
    SeriesDate: pet.seriesDate,
    SeriesTime: pet.seriesTime,
    AcquisitionDate: pet.acquisitionDate,
    AcquisitionTime: pet.acquisitionTime,
    RadiopharmaceuticalStartTime: given(pet.radiopharmaceuticalStartTime),
    RadiopharmaceuticalStartDateTime: given(pet.radiopharmaceuticalStartDateTime),
    PhilipsPETPrivateGroup: philips,
    GEPrivatePostInjectionDateTime: given(pet.gePostInjectionDateTime),
    FrameReferenceTime: given(pet.frameReferenceTime),
    ActualFrameDuration: given(pet.actualFrameDuration),
    PatientSize: given(pet.patientSize),
    PatientSex: given(pet.patientSex),
  };
}

/**
 * Each instance's factors by SOP Instance UID; empty when the series is not PT or lacks what SUV
 * needs (no weight, not decay- and attenuation-corrected, ...): Cornerstone then shows the
 * modality-LUT values, as its own loader does.
 */
export async function suvFactorsOf(modality: string, instances: readonly ImageAttributes[]): Promise<Map<string, SuvFactors>> {
  const pet = instances.filter((i): i is ImageAttributes & { pet: PetAttributes } => i.pet !== null);
  if (modality !== 'PT' || pet.length === 0) return new Map();
  const { calculateSUVScalingFactors } = await import('@cornerstonejs/calculate-suv');
  try {
    const factors = calculateSUVScalingFactors(pet.map((i) => suvInput(i.pet)));
    return new Map(pet.map((i, k) => [i.sopInstanceUid, factors[k]!]));
  } catch {
    return new Map();
  }
}
