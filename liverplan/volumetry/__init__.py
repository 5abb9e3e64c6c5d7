"""Segmentation and volumetry: liver, lesions, vessels, Couinaud segments, volumes."""
