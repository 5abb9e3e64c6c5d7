"""Resection planning: patient, resections, future liver remnant, staging, ICG."""
