#!/usr/bin/python3
# Writes small PT series with pydicom, each a case of SUV scaling, and prints as JSON what each
# file holds (stored pixels, rescale) and the SUVbw factor QIBA's formula gives, worked out here
# from the written values (not by @cornerstonejs/calculate-suv, which the code under test uses):
#   bqml:    Units BQML, decay from the series' earliest acquisition (Series Time is later), so a
#            per-instance computation would be wrong for the later slices;
#   philips: Units CNTS with Philips' private SUV Scale Factor;
#   noweight: no Patient Weight: no SUV, modality LUT only.
import json, sys, warnings
warnings.simplefilter('ignore')
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

out = sys.argv[1]
PT = '1.2.840.10008.5.1.4.1.1.128'
ROOT = '1.2.826.0.1.3680043.10.2'

def seconds(tm):
    return int(tm[0:2]) * 3600 + int(tm[2:4]) * 60 + float(tm[4:])

def write(case, k, slices, extra):
    study = f'{ROOT}.{k}'
    series = f'{study}.1'
    files = []
    for n, s in enumerate(slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = PT
        sop = f'{series}.{n + 1}'
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SOPClassUID, ds.SOPInstanceUID = PT, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality = 'PT'
        ds.PatientName, ds.PatientID, ds.PatientSex = f'PET^{case}', f'PET-{k}', 'M'
        ds.PatientSize = '1.8'
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = '20261130'
        ds.SeriesTime = '100600'
        ds.AcquisitionTime = s['acquisition_time']
        ds.SeriesNumber, ds.InstanceNumber = 1, n + 1
        ds.FrameOfReferenceUID = f'{study}.9'
        ds.ImagePositionPatient = [0, 0, n * 3.0]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [4, 4]
        ds.SliceThickness = 3
        ds.CorrectedImage = ['ATTN', 'DECY', 'DTIM']
        ds.DecayCorrection = 'START'
        isotope = Dataset()
        isotope.RadiopharmaceuticalStartTime = '090000'
        isotope.RadionuclideTotalDose = '370000000'
        isotope.RadionuclideHalfLife = '6586.2'
        ds.RadiopharmaceuticalInformationSequence = Sequence([isotope])
        ds.Rows = ds.Columns = 8
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME2'
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = s['slope'], '0'
        stored = (np.arange(64, dtype=np.uint16) * (n + 7) * 97) % 32000
        ds.PixelData = stored.astype('<u2').tobytes()
        for keyword, value in extra.items():
            if value is None: delattr(ds, keyword)
            else: setattr(ds, keyword, value)
        if case == 'philips':
            ds.add_new(0x70530010, 'LO', 'Philips PET Private Group')
            ds.add_new(0x70531000, 'DS', '0.000456')
        path = f'{out}/{case}-{n + 1}.dcm'
        ds.save_as(path, write_like_original=False)
        back = pydicom.dcmread(path)
        files.append({'sop_instance_uid': sop, 'slope': float(back.RescaleSlope), 'intercept': float(back.RescaleIntercept),
                      'stored': [int(v) for v in back.pixel_array.ravel()]})
    return series, files

cases = []
slices = [{'acquisition_time': t, 'slope': sl} for t, sl in [('100500', '0.731'), ('100530', '1.25'), ('100730', '0.5'), ('101000', '2.0625')]]
series, files = write('bqml', 1, slices, {'Units': 'BQML', 'PatientWeight': '75'})
earliest = min(seconds(s['acquisition_time']) for s in slices)
# QIBA: the scan starts at Series Time, unless an acquisition began before it (then at the earliest).
scan = seconds('100600') if seconds('100600') <= earliest else earliest
decayed = 370000000 * 2 ** (-(scan - seconds('090000')) / 6586.2)
cases.append({'case': 'bqml', 'series_instance_uid': series, 'suvbw': 75000 / decayed, 'files': files})
series, files = write('philips', 2, slices[:2], {'Units': 'CNTS', 'PatientWeight': '80'})
cases.append({'case': 'philips', 'series_instance_uid': series, 'suvbw': 0.000456, 'files': files})
series, files = write('noweight', 3, slices[:2], {'Units': 'BQML'})
cases.append({'case': 'noweight', 'series_instance_uid': series, 'suvbw': None, 'files': files})
print(json.dumps(cases))
